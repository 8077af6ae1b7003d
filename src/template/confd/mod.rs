//! confd-style template functions: lookups in the render's snapshot (`getv`, `getvs`,
//! `gets`, `ls`, `lsdir`, `exists`) and confd's helpers (`base`, `dir`, `split`, `join`,
//! `getenv`, `hostname`). Keys are full etcd keys, as they appear in `data`.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Map, Value};
use tera::Tera;

use super::args::Args;
use super::scope;
use crate::etcd::{dir_prefix, Snapshot, SECRET_ENV};
use gopath::Glob;
pub use reconfig_migrate::confd::gopath;

type Call = fn(&HashMap<String, Value>) -> tera::Result<Value>;

/// Every function, by the name templates call it with.
const FUNCTIONS: &[(&str, Call)] = &[
    ("getv", getv),
    ("getvs", getvs),
    ("gets", gets),
    ("ls", ls),
    ("lsdir", lsdir),
    ("exists", exists),
    ("base", base),
    ("dir", dir),
    ("split", split),
    ("join", join),
    ("getenv", getenv),
    // Tera's own `get_env` would read reconfig's secrets: this one takes its place.
    ("get_env", getenv),
    ("hostname", hostname),
];

/// Registers the functions on a template's Tera instance.
pub fn register(tera: &mut Tera) {
    for &(name, call) in FUNCTIONS {
        tera.register_function(name, call);
    }
}

/// Runs `read` on the snapshot of the render in progress.
fn with_snapshot<R>(
    a: &Args<'_>,
    read: impl FnOnce(&Snapshot) -> tera::Result<R>,
) -> tera::Result<R> {
    scope::with_snapshot(read).unwrap_or_else(|| Err(a.error("called outside a render")))
}

/// A value as text; templates produce text, so a binary value is an error naming its key.
fn text(a: &Args<'_>, key: &str, raw: &[u8]) -> tera::Result<String> {
    String::from_utf8(raw.to_vec())
        .map_err(|_| a.error(format!("value of key {key} is not valid UTF-8")))
}

/// The pairs whose key matches `pattern`, sorted by key.
fn matching<'s>(
    a: &Args<'_>,
    snapshot: &'s Snapshot,
    pattern: &str,
) -> tera::Result<Vec<(&'s str, &'s [u8])>> {
    let glob = Glob::new(pattern).map_err(|e| a.error(e))?;
    let candidates: Box<dyn Iterator<Item = (&str, &[u8])>> = match glob.subtree() {
        Some(subtree) => Box::new(snapshot.tree(subtree)),
        None => Box::new(snapshot.iter()),
    };
    Ok(candidates.filter(|(key, _)| glob.matches(key)).collect())
}

/// `getv(key, default?)`: the value of `key`; an error if missing and no default is given.
fn getv(args: &HashMap<String, Value>) -> tera::Result<Value> {
    let a = Args::new("getv", args, &["key", "default"])?;
    let key = a.string("key")?;
    let default = a.opt_string("default")?;
    with_snapshot(&a, |s| match (s.get(key), default) {
        (Some(raw), _) => text(&a, key, raw).map(Value::String),
        (None, Some(default)) => Ok(Value::String(default.to_string())),
        (None, None) => Err(a.error(format!(
            "key {key} not found (and no default){}",
            scope::outside(key)
        ))),
    })
}

/// `getvs(pattern)`: the values of the keys matching the glob, sorted (confd's order).
fn getvs(args: &HashMap<String, Value>) -> tera::Result<Value> {
    let a = Args::new("getvs", args, &["pattern"])?;
    let pattern = a.string("pattern")?;
    with_snapshot(&a, |s| {
        let mut values = matching(&a, s, pattern)?
            .into_iter()
            .map(|(key, raw)| text(&a, key, raw))
            .collect::<tera::Result<Vec<String>>>()?;
        values.sort();
        Ok(values.into_iter().map(Value::String).collect())
    })
}

/// `gets(pattern)`: `{key, value}` objects for the keys matching the glob, sorted by key.
fn gets(args: &HashMap<String, Value>) -> tera::Result<Value> {
    let a = Args::new("gets", args, &["pattern"])?;
    let pattern = a.string("pattern")?;
    with_snapshot(&a, |s| {
        matching(&a, s, pattern)?
            .into_iter()
            .map(|(key, raw)| {
                let mut pair = Map::new();
                pair.insert("key".into(), Value::String(key.to_string()));
                pair.insert("value".into(), Value::String(text(&a, key, raw)?));
                Ok(Value::Object(pair))
            })
            .collect()
    })
}

/// The sorted names of the children of `dir`; with `dirs_only`, of those with keys below.
fn child_names(a: &Args<'_>, dirs_only: bool) -> tera::Result<Value> {
    let dir = a.string("dir")?;
    let prefix = dir_prefix(dir);
    with_snapshot(a, |s| {
        let mut names = BTreeSet::new();
        for (key, _) in s.tree(dir) {
            let Some(rest) = key.strip_prefix(&prefix) else {
                continue;
            };
            let (name, below) = match rest.split_once('/') {
                Some((name, _)) => (name, true),
                None => (rest, false),
            };
            if !name.is_empty() && (below || !dirs_only) {
                names.insert(name);
            }
        }
        Ok(names
            .into_iter()
            .map(|n| Value::String(n.to_string()))
            .collect())
    })
}

/// `ls(dir)`: the sorted names (not full keys) of the immediate children of `dir`.
fn ls(args: &HashMap<String, Value>) -> tera::Result<Value> {
    child_names(&Args::new("ls", args, &["dir"])?, false)
}

/// `lsdir(dir)`: like `ls`, only the children that have keys below them.
fn lsdir(args: &HashMap<String, Value>) -> tera::Result<Value> {
    child_names(&Args::new("lsdir", args, &["dir"])?, true)
}

/// `exists(key)`: whether `key` has a value.
fn exists(args: &HashMap<String, Value>) -> tera::Result<Value> {
    let a = Args::new("exists", args, &["key"])?;
    let key = a.string("key")?;
    with_snapshot(&a, |s| Ok(Value::Bool(s.get(key).is_some())))
}

/// `base(path)`: the last element of a path (Go's `path.Base`).
fn base(args: &HashMap<String, Value>) -> tera::Result<Value> {
    let a = Args::new("base", args, &["path"])?;
    Ok(Value::String(gopath::base(a.string("path")?)))
}

/// `dir(path)`: all but the last element of a path (Go's `path.Dir`).
fn dir(args: &HashMap<String, Value>) -> tera::Result<Value> {
    let a = Args::new("dir", args, &["path"])?;
    Ok(Value::String(gopath::dir(a.string("path")?)))
}

/// `split(s, sep)`: the pieces of `s` between each `sep` (Go's `strings.Split`; an empty
/// `sep` splits into characters).
fn split(args: &HashMap<String, Value>) -> tera::Result<Value> {
    let a = Args::new("split", args, &["s", "sep"])?;
    let (s, sep) = (a.string("s")?, a.string("sep")?);
    let pieces: Vec<Value> = if sep.is_empty() {
        s.chars().map(|c| Value::String(c.to_string())).collect()
    } else {
        s.split(sep).map(|p| Value::String(p.to_string())).collect()
    };
    Ok(Value::Array(pieces))
}

/// `join(list, sep)`: the strings of `list` joined with `sep` (Go's `strings.Join`).
fn join(args: &HashMap<String, Value>) -> tera::Result<Value> {
    let a = Args::new("join", args, &["list", "sep"])?;
    let sep = a.string("sep")?;
    let list = a
        .value("list")?
        .as_array()
        .ok_or_else(|| a.error("argument `list` must be a list"))?;
    let items = list
        .iter()
        .enumerate()
        .map(|(i, item)| {
            item.as_str()
                .ok_or_else(|| a.error(format!("item {i} of `list` is not a string")))
        })
        .collect::<tera::Result<Vec<&str>>>()?;
    Ok(Value::String(items.join(sep)))
}

/// `getenv(name, default?)`: an environment variable; an error if unset and no default.
fn getenv(args: &HashMap<String, Value>) -> tera::Result<Value> {
    let a = Args::new("getenv", args, &["name", "default"])?;
    let name = a.string("name")?;
    if SECRET_ENV.contains(&name) {
        return Err(a.error(format!(
            "{name} is reconfig's secret: templates cannot read it"
        )));
    }
    match (std::env::var(name), a.opt_string("default")?) {
        (Ok(value), _) => Ok(Value::String(value)),
        (Err(std::env::VarError::NotPresent), Some(default)) => {
            Ok(Value::String(default.to_string()))
        }
        (Err(std::env::VarError::NotPresent), None) => Err(a.error(format!(
            "environment variable {name} is not set (and no default)"
        ))),
        (Err(std::env::VarError::NotUnicode(_)), _) => {
            Err(a.error(format!("environment variable {name} is not valid UTF-8")))
        }
    }
}

/// `hostname()`: this machine's host name.
fn hostname(args: &HashMap<String, Value>) -> tera::Result<Value> {
    let a = Args::new("hostname", args, &[])?;
    let name = nix::unistd::gethostname().map_err(|e| a.error(e))?;
    name.into_string()
        .map(Value::String)
        .map_err(|_| a.error("host name is not valid UTF-8"))
}
