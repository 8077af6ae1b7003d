//! What the benchmarks set up: one template that lists a tree's keys, its expected
//! render, conf.d entries using it, and loading keys into etcd and reading them back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use etcd_client::{Client, GetOptions, Txn, TxnOp};

use crate::common::cfgdir;

/// The template of every entry: one `key=value` line per key of the entry's tree.
pub const TEMPLATE: &str = "<% for k, v in data %>\n<%= k %>=<%= v %>\n<% endfor %>\n";

/// What the template renders for a tree.
pub fn render(tree: &BTreeMap<String, String>) -> String {
    tree.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
}

/// A file's text; empty when it is missing or unreadable.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A conf.d entry rendering `key`'s tree into `out/NAME.conf` with the shared `t.tmpl`.
pub fn entry(out: &Path, name: &str, key: &str, extra: &str) -> (String, String) {
    entry_with(out, name, key, "t.tmpl", extra)
}

/// A conf.d entry rendering `key`'s tree into `out/NAME.conf` with `templates/SOURCE`.
pub fn entry_with(
    out: &Path,
    name: &str,
    key: &str,
    source: &str,
    extra: &str,
) -> (String, String) {
    let target = out.join(format!("{name}.conf"));
    let json = format!(
        r#"{{"id":"{name}","key":"{key}","recursive":true,"source":"{source}","target":"{}"{extra}}}"#,
        target.display()
    );
    (name.to_string(), json)
}

/// A config dir `root/cfg` with these entries and [`TEMPLATE`] as `t.tmpl`.
pub fn config(root: &Path, entries: &[(String, String)]) -> PathBuf {
    config_with(
        root,
        entries,
        &[("t.tmpl".to_string(), TEMPLATE.to_string())],
    )
}

/// A config dir `root/cfg` with these entries and templates (name, text).
pub fn config_with(
    root: &Path,
    entries: &[(String, String)],
    templates: &[(String, String)],
) -> PathBuf {
    let refs: Vec<(&str, String)> = entries
        .iter()
        .map(|(n, j)| (n.as_str(), j.clone()))
        .collect();
    let templates: Vec<(&str, &str)> = templates
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    cfgdir(root, &refs, &templates)
}

/// A template of its own for entry `name`, rendering what [`TEMPLATE`] renders: a comment
/// naming the entry, alone on its line (so the line goes), then [`TEMPLATE`]. Real
/// configurations have one template per target, each compiled on its own.
pub fn own_template(name: &str) -> (String, String) {
    (format!("{name}.tmpl"), format!("<%# {name} %>\n{TEMPLATE}"))
}

/// Loads pairs with transactions of 128 puts (etcd's default limit).
pub async fn load(client: &mut Client, pairs: &BTreeMap<String, String>) {
    let pairs: Vec<_> = pairs.iter().collect();
    for chunk in pairs.chunks(128) {
        let ops: Vec<TxnOp> = chunk
            .iter()
            .map(|(k, v)| TxnOp::put(k.as_str(), v.as_str(), None))
            .collect();
        client.txn(Txn::new().and_then(ops)).await.unwrap();
    }
}

/// The tree under `prefix` as etcd holds it now.
pub async fn tree_in_etcd(client: &mut Client, prefix: &str) -> BTreeMap<String, String> {
    let all = client
        .get(format!("{prefix}/"), Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    all.kvs()
        .iter()
        .map(|kv| {
            (
                kv.key_str().unwrap().to_string(),
                kv.value_str().unwrap().to_string(),
            )
        })
        .collect()
}
