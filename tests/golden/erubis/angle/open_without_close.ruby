<%= @reconfig["watched"] %> then <% never closed
and more <%= text
