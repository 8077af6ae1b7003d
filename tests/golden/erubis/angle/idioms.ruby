# each over a hash, sorted
<% @reconfig["data"].keys.sort.each do |k| %>
<%= k %> => <%= @reconfig["data"][k] %>
<% end %>
# if / elsif / else
<% if @reconfig["data"]["/app/db/port"] == "5432" %>
postgres
<% elsif @reconfig["data"]["/app/db/port"] == "3306" %>
mysql
<% else %>
other
<% end %>
# nil prints nothing
missing=[<%= @reconfig["data"]["/app/missing"] %>]
# to_yaml
<%= @reconfig["altdata"]["limits"].to_yaml %>
# JSON.pretty_generate
<%= JSON.pretty_generate(@reconfig["altdata"]) %>
# to_json
<%= @reconfig["altdata"]["limits"].to_json %>
# hash lookups under @reconfig
<%= @reconfig["altdata"]["limits"]["/limits/cpu"] %> cpus, watched <%= @reconfig["watched"] %>
