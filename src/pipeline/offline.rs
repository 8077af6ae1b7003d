//! `reconfig render`: the step up to the render, against a local snapshot of keys instead
//! of etcd, printing to stdout — for template development and the CI of template
//! repositories.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tracing::error;

use super::step::{load_jobs, own_snapshot, render, LoadError};
use crate::config::RenderLimits;
use crate::etcd::Snapshot;
use crate::exit::{Exit, Fatal};

/// Why `reconfig render` could not run at all (entries that fail are counted, not errors).
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    /// No usable configuration.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The snapshot file cannot be read.
    #[error("{}: cannot read: {source}", .path.display())]
    Read {
        /// The `--data` file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The snapshot file is not JSON.
    #[error("{}: malformed JSON: {source}", .path.display())]
    Json {
        /// The `--data` file.
        path: PathBuf,
        /// The parser's reason.
        source: serde_json::Error,
    },
    /// The snapshot file is not YAML.
    #[error("{}: malformed YAML: {source}", .path.display())]
    Yaml {
        /// The `--data` file.
        path: PathBuf,
        /// The parser's reason.
        source: serde_yaml_ng::Error,
    },
    /// The snapshot file holds something else than one flat object.
    #[error("{}: {problem}", .path.display())]
    Shape {
        /// The `--data` file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// `--entry` names no valid entry.
    #[error("no valid entry with id {0:?}")]
    NoSuchEntry(String),
}

impl Fatal for OfflineError {
    fn exit(&self) -> Exit {
        match self {
            OfflineError::Load(_) => Exit::Usage,
            _ => Exit::Failed,
        }
    }
}

/// Reads a flat JSON or YAML object of full key → value (strings, numbers or booleans).
pub fn read_snapshot(path: &Path) -> Result<Snapshot, OfflineError> {
    let text = std::fs::read_to_string(path).map_err(|source| OfflineError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let is_yaml = path.extension().is_some_and(|x| x == "yaml" || x == "yml");
    let value: Value = if is_yaml {
        serde_yaml_ng::from_str(&text).map_err(|source| OfflineError::Yaml {
            path: path.to_path_buf(),
            source,
        })?
    } else {
        serde_json::from_str(&text).map_err(|source| OfflineError::Json {
            path: path.to_path_buf(),
            source,
        })?
    };
    let shape = |problem: String| OfflineError::Shape {
        path: path.to_path_buf(),
        problem,
    };
    let Value::Object(map) = value else {
        return Err(shape("expected one object of key → value".into()));
    };
    let mut kvs = BTreeMap::new();
    for (key, value) in map {
        let text = match value {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                return Err(shape(format!(
                    "value of {key} must be a string, number or boolean"
                )))
            }
        };
        kvs.insert(key, text.into_bytes());
    }
    Ok(Snapshot::new(0, kvs))
}

/// What `reconfig render` renders, from what.
#[derive(Debug, Clone)]
pub struct RenderSettings {
    /// The configuration directory.
    pub cfgdir: PathBuf,
    /// Prepended to every entry's key.
    pub prefix: String,
    /// The snapshot file: a flat JSON or YAML object, full key → value.
    pub data: PathBuf,
    /// Only this entry, when given.
    pub entry: Option<String>,
    /// The render limits of entries that set none of their own.
    pub limits: RenderLimits,
}

/// Renders the selected entries to stdout; any failing entry makes the exit code 1.
pub fn render_offline(args: &RenderSettings) -> Result<Exit, OfflineError> {
    let loaded = load_jobs(&args.cfgdir, &args.prefix, args.limits)?;
    let snapshot = read_snapshot(&args.data)?;
    let selected: Vec<_> = loaded
        .jobs
        .iter()
        .filter(|j| args.entry.as_ref().is_none_or(|id| &j.entry.id == id))
        .collect();
    if let (Some(id), true) = (&args.entry, selected.is_empty()) {
        return Err(OfflineError::NoSuchEntry(id.clone()));
    }
    let mut failed = loaded.refused > 0 && args.entry.is_none();
    for job in &selected {
        match render(job, &own_snapshot(job, &snapshot), None) {
            Ok(text) => {
                if selected.len() > 1 {
                    println!("==> {} ({}) <==", job.entry.id, job.entry.target.display());
                }
                print!("{text}");
            }
            Err(e) => {
                failed = true;
                error!(entry = %job.entry.id, "{e}");
            }
        }
    }
    Ok(if failed { Exit::Failed } else { Exit::Ok })
}
