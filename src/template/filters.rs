//! reconfig's filters: Ruby-compatible `to_json` and `to_yaml`, `from_json`, and confd's
//! `base` and `dir` as filters. Tera's own filters stay available.

use std::collections::HashMap;

use serde_json::Value;
use tera::Tera;

use super::args::Args;
use super::confd::gopath;
use super::ruby::{json, yaml};

type Filter = fn(&Value, &HashMap<String, Value>) -> tera::Result<Value>;

/// Every filter, by the name templates use.
const FILTERS: &[(&str, Filter)] = &[
    ("to_json", to_json),
    ("to_yaml", to_yaml),
    ("from_json", from_json),
    ("base", base),
    ("dir", dir),
];

/// Registers the filters on a template's Tera instance.
pub fn register(tera: &mut Tera) {
    for &(name, filter) in FILTERS {
        tera.register_filter(name, filter);
    }
}

/// `to_json`: Ruby's `to_json`; `to_json(pretty=true)`: Ruby's `JSON.pretty_generate`.
fn to_json(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    let a = Args::new("to_json", args, &["pretty"])?;
    Ok(Value::String(if a.opt_bool("pretty")?.unwrap_or(false) {
        json::pretty_generate(value)
    } else {
        json::generate(value)
    }))
}

/// `to_yaml`: Ruby's `to_yaml` (a `---` document ending in a newline).
fn to_yaml(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    Args::new("to_yaml", args, &[])?;
    Ok(Value::String(yaml::to_yaml(value)))
}

/// `from_json`: parses a JSON string (e.g. a value stored as JSON in etcd).
fn from_json(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    let a = Args::new("from_json", args, &[])?;
    let text = value
        .as_str()
        .ok_or_else(|| a.error("the value must be a string"))?;
    serde_json::from_str(text).map_err(|e| a.error(format!("invalid JSON: {e}")))
}

/// `base`: the last element of a path (Go's `path.Base`).
fn base(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    let a = Args::new("base", args, &[])?;
    let path = value
        .as_str()
        .ok_or_else(|| a.error("the value must be a string"))?;
    Ok(Value::String(gopath::base(path)))
}

/// `dir`: all but the last element of a path (Go's `path.Dir`).
fn dir(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    let a = Args::new("dir", args, &[])?;
    let path = value
        .as_str()
        .ok_or_else(|| a.error("the value must be a string"))?;
    Ok(Value::String(gopath::dir(path)))
}
