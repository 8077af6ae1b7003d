{{ not a tera variable }} and {% not a tag %} and {# not a comment #}
closing }} and %} and #} alone
brace before tag {<%= @reconfig["watched"] %>} and {{<%= @reconfig["watched"] %>}}
<% if true %>
  {% raw %}{{ still text }}{% endraw %}
<% end %>
  {{-
 spans -}}
{
