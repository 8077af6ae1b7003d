# header
<% @reconfig["data"].each do |k, v| %>
  <% if k.start_with?("/app/db") %>
	<% x = 1 %>
db <%= k %>=<%= v %>
  <% end %>   	
<% end %>
	 	<% y = 2 %>	 
# footer
