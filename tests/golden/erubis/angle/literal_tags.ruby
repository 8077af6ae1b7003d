<%% if x %>
  <%%= y -%>
<%%# not a comment %>
a <%%%> b
<% if true %>
<%% end %>
<% end %>
