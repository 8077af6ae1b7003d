//! `reconfig render`: templates against a local snapshot of keys, without etcd, for
//! template development and the CI of template repositories.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::cli::RenderArgs;
use crate::snapshot::Snapshot;
use crate::sync::{load_jobs, own_snapshot, render, Exit};

/// Reads a flat JSON or YAML object of full key → value (strings, numbers or booleans).
pub fn read_snapshot(path: &Path) -> Result<Snapshot, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let is_yaml = path.extension().is_some_and(|x| x == "yaml" || x == "yml");
    let value: Value = if is_yaml {
        serde_yaml_ng::from_str(&text)
            .map_err(|e| format!("{}: malformed YAML: {e}", path.display()))?
    } else {
        serde_json::from_str(&text)
            .map_err(|e| format!("{}: malformed JSON: {e}", path.display()))?
    };
    let Value::Object(map) = value else {
        return Err(format!(
            "{}: expected one object of key → value",
            path.display()
        ));
    };
    let mut kvs = BTreeMap::new();
    for (key, value) in map {
        let text = match value {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                return Err(format!(
                    "{}: value of {key} must be a string, number or boolean",
                    path.display()
                ))
            }
        };
        kvs.insert(key, text.into_bytes());
    }
    Ok(Snapshot::new(0, kvs))
}

/// Renders the selected entries to stdout; any failure makes the exit code 1.
pub fn run(args: &RenderArgs) -> Exit {
    let loaded = match load_jobs(&args.config.cfgdir, &args.config.prefix) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("reconfig: {e}");
            return Exit::Usage;
        }
    };
    let snapshot = match read_snapshot(&args.data) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("reconfig: {e}");
            return Exit::Failed;
        }
    };
    let selected: Vec<_> = loaded
        .jobs
        .iter()
        .filter(|j| args.entry.as_ref().is_none_or(|id| &j.entry.id == id))
        .collect();
    if let (Some(id), true) = (&args.entry, selected.is_empty()) {
        eprintln!("reconfig: no valid entry with id {id:?}");
        return Exit::Failed;
    }
    let mut failed = loaded.refused > 0 && args.entry.is_none();
    for job in &selected {
        match render(job, &own_snapshot(job, &snapshot)) {
            Ok(text) => {
                if selected.len() > 1 {
                    println!("==> {} ({}) <==", job.entry.id, job.entry.target.display());
                }
                print!("{text}");
            }
            Err(e) => {
                failed = true;
                eprintln!("reconfig: {}: {e}", job.entry.id);
            }
        }
    }
    if failed {
        Exit::Failed
    } else {
        Exit::Ok
    }
}
