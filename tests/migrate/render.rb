#!/usr/bin/env ruby
# frozen_string_literal: true
#
# Renders reconfig.rb entries the way reconfig.rb did, for the differential tests of
# `reconfig migrate` (tests/it/migrate.rs): Debian's Erubis (Erubis::Eruby with the entry's
# pattern), the json gem before 2.8, Psych, and reconfig.rb's data model built from a flat
# snapshot of keys.
#
#   ruby tests/migrate/render.rb JOBS.json > RESULTS.json
#
# JOBS.json: [{"id", "template" (path), "pattern", "key", "recursive", "altkeys" (object),
#              "snapshot" (path of a flat JSON object key => value)}, ...]
# RESULTS.json: [{"id", "output"} or {"id", "error"} or {"id", "missing": true}, ...]

require 'erubis'
require 'json'
require 'yaml'

Encoding.default_external = Encoding::UTF_8
Encoding.default_internal = nil

if Gem::Version.new(JSON::VERSION) >= Gem::Version.new('2.8')
  abort "json #{JSON::VERSION}: 2.8 changed pretty_generate's empty containers; use an older gem"
end

# The keys at or below `key`, in key order (reconfig.rb built its hashes in key order).
def tree(snapshot, key)
  prefix = key.end_with?('/') ? key : "#{key}/"
  snapshot.select { |k, _| k == key || k.start_with?(prefix) }.sort.to_h
end

# etcd v2's listing of a directory: the full keys of its immediate children, sorted.
def children(snapshot, key)
  prefix = key.end_with?('/') ? key : "#{key}/"
  snapshot.keys.select { |k| k.start_with?(prefix) }
          .map { |k| prefix + k.delete_prefix(prefix).split('/').first }
          .uniq.sort
end

# What reconfig.rb's @reconfig held for one entry, or nil when the key is missing.
def model(snapshot, job)
  key = job.fetch('key')
  data = if job['recursive']
           tree(snapshot, key)
         elsif snapshot.key?(key)
           { key => snapshot[key] }
         else
           children(snapshot, key)
         end
  return nil if data.empty?

  altdata = (job['altkeys'] || {}).sort.to_h { |name, k| [name, tree(snapshot, k)] }
  { 'data' => data, 'altdata' => altdata, 'watched' => key }
end

# A fresh object per render, so no local variable or instance variable leaks between them.
class Context
  def initialize(reconfig)
    @reconfig = reconfig
  end

  def render(eruby)
    eruby.result(binding)
  end
end

snapshots = Hash.new { |h, path| h[path] = JSON.parse(File.read(path, encoding: 'UTF-8')) }
results = JSON.parse(File.read(ARGV.fetch(0))).map do |job|
  reconfig = model(snapshots[job.fetch('snapshot')], job)
  next { 'id' => job['id'], 'missing' => true } if reconfig.nil?

  template = File.read(job.fetch('template'), encoding: 'UTF-8')
  begin
    eruby = Erubis::Eruby.new(template, pattern: job['pattern'] || '<% %>')
    { 'id' => job['id'], 'output' => Context.new(reconfig).render(eruby) }
  rescue StandardError, ScriptError => e
    { 'id' => job['id'], 'error' => "#{e.class}: #{e.message}".lines.first.to_s.chomp }
  end
end
puts JSON.generate(results)
