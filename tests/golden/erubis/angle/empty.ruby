before
<% @reconfig["data"].each do |k, v| %>
never <%= k %>
<% end %>
<%= @reconfig["data"].to_yaml %>
<%= JSON.pretty_generate(@reconfig["data"]) %>
<%= JSON.pretty_generate([]) %>
<%= JSON.pretty_generate(@reconfig["altdata"]) %>
after
