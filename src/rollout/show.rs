//! `reconfig rollout status GROUP`: a group's rollout as etcd holds it, for a person at a
//! terminal — the revision of the current rollout, its failed nodes and why, the nodes
//! done, in progress and waiting (in queue order), and nodes still running an older one.
//! It reads one range and writes nothing.

use std::fmt::Write as _;

use super::group::{Group, Rollout};
use super::keys::Keys;
use crate::etcd::{Connection, Etcd, EtcdError};
use crate::exit::{Exit, Fatal};

/// Why the status could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum RolloutStatusError {
    /// etcd could not be reached or refused the read.
    #[error(transparent)]
    Etcd(#[from] EtcdError),
}

impl Fatal for RolloutStatusError {
    fn exit(&self) -> Exit {
        Exit::Failed
    }
}

/// What `reconfig rollout status` needs.
#[derive(Debug, Clone)]
pub struct RolloutStatusSettings {
    /// The group shown.
    pub group: String,
    /// Where the groups keep their keys (`--rollout-prefix`).
    pub prefix: String,
    /// Where etcd is.
    pub connection: Connection,
}

/// Prints the group's rollout; exit 1 when it is held.
pub async fn rollout_status(args: &RolloutStatusSettings) -> Result<Exit, RolloutStatusError> {
    let etcd = Etcd::connect(&args.connection).await?;
    let keys = Keys::new(&args.prefix, &args.group);
    let read = keys.read(&etcd).await?;
    let group = Group::read(&keys, read.kvs());
    let (text, held) = describe(&args.group, &keys, &group);
    print!("{text}");
    Ok(if held { Exit::Failed } else { Exit::Ok })
}

/// The report, and whether the current rollout is held.
fn describe(name: &str, keys: &Keys, group: &Group) -> (String, bool) {
    let mut out = String::new();
    let Some(current) = group.newest() else {
        let _ = writeln!(out, "group {name}: no rollout under {}", keys.root());
        return (out, false);
    };
    let rollout = group.get(current).cloned().unwrap_or_default();
    let held = !rollout.held.is_empty();
    let started = rollout
        .marker
        .as_ref()
        .map(|m| format!(", started by {} at {}", m.node, m.at))
        .unwrap_or_default();
    let state = if held { "HELD" } else { "going" };
    let _ = writeln!(
        out,
        "group {name}: rollout of revision {current}{started}: {state}"
    );
    lines(&mut out, &rollout);
    let older: Vec<String> = group
        .rollouts()
        .filter(|(revision, _)| *revision != current)
        .flat_map(|(revision, r)| {
            r.pending()
                .into_iter()
                .filter(|(_, q)| q.running)
                .map(move |(node, _)| format!("{node} (revision {revision})"))
        })
        .collect();
    list(&mut out, "still running an older rollout", &older);
    (out, held)
}

/// The rollout's nodes, one line per state.
fn lines(out: &mut String, rollout: &Rollout) {
    let failed: Vec<String> = rollout
        .held
        .iter()
        .map(|(node, note)| format!("{node}: {}", note.reason))
        .collect();
    for line in &failed {
        let _ = writeln!(out, "  failed: {line}");
    }
    let done: Vec<String> = rollout.done.keys().cloned().collect();
    list(out, "done", &done);
    let pending = rollout.pending();
    let running: Vec<String> = pending
        .iter()
        .filter(|(_, q)| q.running)
        .map(|(node, q)| format!("{node} (since {})", q.at))
        .collect();
    list(out, "in progress", &running);
    let waiting: Vec<String> = pending
        .iter()
        .filter(|(_, q)| !q.running)
        .map(|(node, _)| node.to_string())
        .collect();
    list(out, "waiting", &waiting);
}

fn list(out: &mut String, what: &str, nodes: &[String]) {
    if !nodes.is_empty() {
        let _ = writeln!(out, "  {what} ({}): {}", nodes.len(), nodes.join(", "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::group::Note;
    use crate::rollout::keys::Stored;

    fn put(group: &mut Group, keys: &Keys, key: String, create: i64, note: Note) {
        let stored = Stored {
            create_revision: create,
            lease: 1,
            value: note.bytes(),
        };
        group.put(keys, key.as_bytes(), stored);
    }

    #[test]
    fn every_state_has_its_line() {
        let keys = Keys::new("/r/", "web");
        let mut group = Group::default();
        let g = &mut group;
        put(g, &keys, keys.marker(10), 10, Note::now("a", "", ""));
        put(g, &keys, keys.done(10, "a"), 12, Note::now("a", "", ""));
        put(
            g,
            &keys,
            keys.queue(10, "c"),
            13,
            Note::now("c", "running", ""),
        );
        put(
            g,
            &keys,
            keys.queue(10, "b"),
            11,
            Note::now("b", "waiting", ""),
        );
        put(
            g,
            &keys,
            keys.queue(10, "d"),
            14,
            Note::now("d", "waiting", ""),
        );
        put(
            g,
            &keys,
            keys.queue(7, "old"),
            8,
            Note::now("old", "running", ""),
        );
        let (text, held) = describe("web", &keys, &group);
        assert!(!held);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("group web: rollout of revision 10, started by a at "));
        assert!(lines[0].ends_with(": going"), "{text}");
        assert_eq!(lines[1], "  done (1): a");
        assert!(
            lines[2].starts_with("  in progress (1): c (since "),
            "{text}"
        );
        assert_eq!(lines[3], "  waiting (2): b, d");
        assert_eq!(
            lines[4],
            "  still running an older rollout (1): old (revision 7)"
        );
        let failed = Note::now("c", "", "healthcmd failed");
        put(&mut group, &keys, keys.held(10, "c"), 15, failed);
        let (text, held) = describe("web", &keys, &group);
        assert!(
            held && text.contains(": HELD\n  failed: c: healthcmd failed\n"),
            "{text}"
        );
        let (text, held) = describe("x", &Keys::new("/r/", "x"), &Group::default());
        assert_eq!(
            (text.as_str(), held),
            ("group x: no rollout under /r/x/\n", false)
        );
    }
}
