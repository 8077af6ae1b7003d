start
  <% @reconfig["altdata"][
       "limits"].
       each do |k, v| %>
host <%= k +
  "=" + v %>
<% end %>
<%= [1,
2].size %> items
end
