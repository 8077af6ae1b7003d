<%= @reconfig["watched"] %>
  <%= @reconfig["watched"] %>  
	<%= 1 + 1 %>
<%= "" %>
<%= @reconfig["watched"] %>