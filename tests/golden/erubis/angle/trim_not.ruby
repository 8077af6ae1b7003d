a <% if true %>kept
<% end %> b
<% if true %><% end %>
 <% if true %> <% end %> 
<%= "x" %><% if true %>
<% end %>
last line <% if true %><% end %>