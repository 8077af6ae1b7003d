first
<% if true %>
body
<% end %>