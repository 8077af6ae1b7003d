line one
<% @reconfig["data"].each do |k, v| %>
  <%= k %> = <%= v %>
  <% end %>
<%# comment %>  
<%= @reconfig["watched"] %>
end
