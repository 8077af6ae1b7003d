tag: <%= @reconfig["data"]["/app/tag"] %>
name: <%= @reconfig["data"]["/app/name"] %>
unicode text: ünïcødé ✓ 😀
<% @reconfig["altdata"]["limits"].each do |k, v| %>
<%= k %>: <%= v %>
<% end %>
