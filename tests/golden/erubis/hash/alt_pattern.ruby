#% @reconfig["data"].each do |k, v| %#
#%= k %# => #%= v %#
  #% end %#
<% this is text %> and <%= so is this %> and {{ this }}
#%# a comment %#
#%% literal %# and #%%= too %#
a #% if true %# b #% end %# c
#%= @reconfig["watched"] %#