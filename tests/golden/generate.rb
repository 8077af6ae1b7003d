#!/usr/bin/env ruby
# frozen_string_literal: true
#
# Regenerates the expected outputs of the template golden tests from Ruby, the reference
# reconfig.rb ran on: Erubis (Debian's ruby-erubis), the json gem before 2.8 and Psych.
# The tests compare against the files this script writes, which are committed.
#
#   ruby tests/golden/generate.rb        (from the crate root)
#
# Writes:
#   erubis/{angle,hash}/NAME.out   NAME.ruby rendered by Erubis (pattern `<% %>` / `#% %#`)
#                                  with @reconfig from erubis/data.json (or NAME.json)
#   json/NAME.{compact,pretty}     obj.to_json and JSON.pretty_generate(obj), obj from cases.json
#   yaml/NAME.yaml                 obj.to_yaml, obj from yaml/cases.json
#   cfgtest/ID.out                 the original reconfig.rb samples (shared reference copy)
#                                  rendered against cfgtest/snapshot.json

require 'erubis'
require 'json'
require 'yaml'

if Gem::Version.new(JSON::VERSION) >= Gem::Version.new('2.8')
  abort "json #{JSON::VERSION}: 2.8 changed pretty_generate's empty containers; use an older gem"
end

HERE = File.expand_path(__dir__)
ROOT = File.expand_path('../..', HERE)
SAMPLES = ENV.fetch('RECONFIG_RB_SAMPLES') { abort 'set RECONFIG_RB_SAMPLES to the directory of the reconfig.rb samples (conf.d/, templates/)' }

# Erubis puts literal text in single-quoted Ruby source, and Ruby's parser then drops the \r
# of each \r\n in it. reconfig keeps literal text byte for byte (CRLF included), so literal
# text is emitted with String#dump instead; tags, trimming and output are Erubis's own.
class ByteExactEruby < Erubis::Eruby
  def add_text(src, text)
    src << " _buf << #{text.dump};" unless text.empty?
  end
end

# serde_json's objects iterate sorted by key; so do ours.
def deep_sort(value)
  case value
  when Hash then value.keys.sort.to_h { |k| [k, deep_sort(value[k])] }
  when Array then value.map { |v| deep_sort(v) }
  else value
  end
end

def load_json(path)
  deep_sort(JSON.parse(File.read(path)))
end

def render(template, pattern, reconfig)
  @reconfig = reconfig
  ByteExactEruby.new(template, pattern: pattern).result(binding)
end

def write(path, text)
  File.binwrite(path, text)
  puts "wrote #{path.delete_prefix("#{ROOT}/")}"
end

# Erubis cases.
default_data = load_json(File.join(HERE, 'erubis/data.json'))
{ 'angle' => '<% %>', 'hash' => '#% %#' }.each do |dir, pattern|
  Dir[File.join(HERE, 'erubis', dir, '*.ruby')].sort.each do |ruby|
    own_data = ruby.sub(/\.ruby\z/, '.json')
    data = File.exist?(own_data) ? load_json(own_data) : default_data
    write(ruby.sub(/\.ruby\z/, '.out'), render(File.binread(ruby), pattern, data))
  end
end

# JSON.
load_json(File.join(HERE, 'json/cases.json')).each do |name, value|
  write(File.join(HERE, 'json', "#{name}.compact"), value.to_json)
  write(File.join(HERE, 'json', "#{name}.pretty"), JSON.pretty_generate(value))
end

# YAML.
load_json(File.join(HERE, 'yaml/cases.json')).each do |name, value|
  write(File.join(HERE, 'yaml', "#{name}.yaml"), value.to_yaml)
end

# The reconfig.rb samples, with reconfig.rb's data model: `data` is the tree
# under the key when recursive, else {key => value}; `altdata` maps each altkey name to the
# tree under its key.
snapshot = JSON.parse(File.read(File.join(ROOT, 'cfgtest/snapshot.json')))
tree = lambda do |key|
  snapshot.select { |k, _| k == key || k.start_with?("#{key.chomp('/')}/") }.sort.to_h
end
Dir[File.join(SAMPLES, 'conf.d', '*.json')].sort.each do |conf|
  entry = JSON.parse(File.read(conf))
  key = entry.fetch('key')
  data = entry['recursive'] ? tree.call(key) : { key => snapshot.fetch(key) }
  altdata = (entry['altkeys'] || {}).sort.to_h { |name, k| [name, tree.call(k)] }
  reconfig = { 'data' => data, 'altdata' => altdata, 'watched' => key }
  template = File.binread(File.join(SAMPLES, 'templates', entry.fetch('source')))
  pattern = entry['pattern'] || '<% %>'
  write(File.join(HERE, 'cfgtest', "#{entry.fetch('id')}.out"), render(template, pattern, reconfig))
end
