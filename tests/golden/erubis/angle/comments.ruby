a
<%# alone on its line %>
b <%# inline %> c
  <%# indented, trailing spaces %>   
<%# spans
three
lines %>
d<%# c %>e
<%#%>
<%# at the end %>