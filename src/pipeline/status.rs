//! `reconfig status`: what each entry's recorded state says, for a person at a terminal —
//! whether its service was reloaded with what its target holds, or a reload or a check is
//! still due from a change the last run swapped in. It reads the configuration, the state
//! directory and the targets; it changes nothing and needs no etcd.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::config::{self, ConfigError, Entry};
use crate::exit::{Exit, Fatal};
use crate::state::{digest, Record, StateDir, StateError};

/// Why `reconfig status` could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// No usable configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// No usable state directory.
    #[error(transparent)]
    State(#[from] StateError),
}

impl Fatal for StatusError {
    fn exit(&self) -> Exit {
        Exit::Usage
    }
}

/// Whose state `reconfig status` shows.
#[derive(Debug, Clone)]
pub struct StatusSettings {
    /// The configuration directory.
    pub cfgdir: PathBuf,
    /// Prepended to every entry's key.
    pub prefix: String,
    /// The state directory.
    pub state_dir: PathBuf,
}

/// Prints one line per entry; exit 1 when a reload or a check is due for some entry.
pub fn status(args: &StatusSettings) -> Result<Exit, StatusError> {
    let loaded = config::load(&args.cfgdir, &args.prefix)?;
    let state = StateDir::existing(&args.state_dir)?;
    let mut due = false;
    let rows: Vec<[String; 3]> = loaded
        .entries
        .iter()
        .map(|entry| {
            let record = state.as_ref().map_or(Ok(None), |s| s.record_of(entry));
            let (line, is_due) = describe(entry, record);
            due |= is_due;
            [entry.id.clone(), entry.target.display().to_string(), line]
        })
        .collect();
    print!("{}", table(&rows));
    for problem in &loaded.problems {
        println!("{problem}; entry skipped");
    }
    Ok(if due { Exit::Failed } else { Exit::Ok })
}

/// What an entry's record says, and whether something is due.
fn describe(entry: &Entry, record: Result<Option<Record>, String>) -> (String, bool) {
    let record = match record {
        Ok(Some(record)) => record,
        Ok(None) => return ("no record: no change recorded yet".into(), false),
        Err(e) => return (e, false),
    };
    let holds = std::fs::read(&entry.target)
        .ok()
        .map(|bytes| digest(&bytes));
    if let Some(unconfirmed) = &record.unconfirmed {
        if holds.as_deref() == Some(unconfirmed.sha256.as_str()) {
            let line = if unconfirmed.rollout {
                "TURN UNFINISHED: swapped in by a rollout turn not yet healthy and baked; \
                 put back at the next start, and rolled out again"
            } else {
                "CHECK DUE: swapped in before its check after the swap ran; checked (and \
                 rolled back if it fails) at the next start"
            };
            return (line.into(), true);
        }
    }
    let revision = record
        .revision
        .map_or_else(String::new, |r| format!(" (revision {r})"));
    if record.reload_pending {
        return (
            format!("RELOAD DUE: swapped in{revision}, service not reloaded yet"),
            true,
        );
    }
    match (&record.reloaded, &record.reloaded_at) {
        (Some(reloaded), Some(at)) if holds.as_deref() == Some(reloaded.as_str()) => {
            (format!("applied: reloaded at {at}{revision}"), false)
        }
        (Some(_), Some(at)) => (
            format!("target changed since the reload at {at}, not by reconfig"),
            false,
        ),
        _ => (format!("applied{revision}"), false),
    }
}

/// Rows under a header, in columns as wide as their longest cell.
fn table(rows: &[[String; 3]]) -> String {
    let header = ["ENTRY", "TARGET", "STATE"].map(String::from);
    let widths: Vec<usize> = (0..2)
        .map(|i| {
            std::iter::once(&header)
                .chain(rows)
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let _ = writeln!(
            out,
            "{:w0$}  {:w1$}  {}",
            row[0],
            row[1],
            row[2],
            w0 = widths[0],
            w1 = widths[1]
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Unconfirmed;

    #[test]
    fn each_record_reads_as_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("t");
        std::fs::write(&target, "new").unwrap();
        let entry = Entry::for_test(&target);
        let record = |f: &dyn Fn(&mut Record)| {
            let mut r = Record {
                revision: Some(7),
                ..Record::default()
            };
            f(&mut r);
            Ok(Some(r))
        };
        let (line, due) = describe(&entry, record(&|r| r.reload_pending = true));
        assert!(due && line.starts_with("RELOAD DUE") && line.contains("revision 7"));
        for (rollout, shown) in [(true, "TURN UNFINISHED"), (false, "CHECK DUE")] {
            let (line, due) = describe(
                &entry,
                record(&|r| {
                    r.unconfirmed = Some(Unconfirmed {
                        sha256: digest(b"new"),
                        previous: None,
                        rollout,
                    })
                }),
            );
            assert!(due && line.starts_with(shown), "{line}");
        }
        let (line, due) = describe(
            &entry,
            record(&|r| {
                r.reloaded = Some(digest(b"new"));
                r.reloaded_at = Some("then".into());
            }),
        );
        assert!(
            !due && line.starts_with("applied: reloaded at then"),
            "{line}"
        );
        let (line, _) = describe(
            &entry,
            record(&|r| {
                r.reloaded = Some(digest(b"old"));
                r.reloaded_at = Some("then".into());
            }),
        );
        assert!(line.contains("not by reconfig"), "{line}");
        let (line, due) = describe(&entry, Ok(None));
        assert!(!due && line.starts_with("no record"));
    }

    #[test]
    fn columns_line_up() {
        let rows = [["a".to_string(), "/t".to_string(), "x".to_string()]];
        assert_eq!(table(&rows), "ENTRY  TARGET  STATE\na      /t      x\n");
    }
}
