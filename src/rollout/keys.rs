//! Where a group's rollouts live in etcd. Under the group's root `PREFIX/GROUP/`:
//!
//! - `rollouts/R` — the group's rollout of change R was started (no lease). The newest is
//!   the group's current rollout; starting one deletes the older markers.
//! - `queue/R/NODE` — NODE has change R to apply and waits for its turn, or (value
//!   `running`) has swapped it in and is not done yet; bound to NODE's lease.
//! - `done/R/NODE` — NODE is swapped, reloaded, healthy and baked (no lease).
//! - `held/R/NODE` — NODE's check or health failed: the group holds change R (no lease).
//!
//! R is written with 20 digits, so etcd's key order is the revisions' order and the markers,
//! done and held keys of every rollout older than R are one key range each.

use etcd_client::proto::PbKeyValue;
use etcd_client::{GetOptions, GetResponse};

use crate::etcd::{Etcd, EtcdError};

/// Digits of a revision in a key: enough for any `i64`.
const DIGITS: usize = 20;

/// A group's root and the keys below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    root: String,
}

/// What a key of the group stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// The marker of rollout R.
    Marker(i64),
    /// A node queued in (or running) rollout R.
    Queue(i64, String),
    /// A node done with rollout R.
    Done(i64, String),
    /// A node that failed rollout R.
    Held(i64, String),
}

impl Keys {
    /// The keys of `group` under `prefix` (which ends with `/`).
    pub fn new(prefix: &str, group: &str) -> Keys {
        Keys {
            root: format!("{prefix}{group}/"),
        }
    }

    /// The group's root, every key of the group below it.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// The end of the range of every key below the root.
    pub fn root_end(&self) -> Vec<u8> {
        prefix_end(&self.root)
    }

    /// Every key of the group, in one bounded read.
    pub async fn read(&self, etcd: &Etcd) -> Result<GetResponse, EtcdError> {
        let options = GetOptions::new().with_range(self.root_end());
        etcd.bounded(etcd.kv().get(self.root(), Some(options)))
            .await
    }

    /// The marker of rollout `revision`.
    pub fn marker(&self, revision: i64) -> String {
        format!("{}rollouts/{revision:0DIGITS$}", self.root)
    }

    /// Every marker from `revision` on: `(start, end)`.
    pub fn markers_from(&self, revision: i64) -> (String, Vec<u8>) {
        (self.marker(revision), prefix_end(&self.sub("rollouts")))
    }

    /// `node`'s place in rollout `revision`.
    pub fn queue(&self, revision: i64, node: &str) -> String {
        format!("{}queue/{revision:0DIGITS$}/{node}", self.root)
    }

    /// `node`'s done marker for rollout `revision`.
    pub fn done(&self, revision: i64, node: &str) -> String {
        format!("{}done/{revision:0DIGITS$}/{node}", self.root)
    }

    /// `node`'s failure of rollout `revision`.
    pub fn held(&self, revision: i64, node: &str) -> String {
        format!("{}held/{revision:0DIGITS$}/{node}", self.root)
    }

    /// Every failure of rollout `revision`: `(start, end)`.
    pub fn held_in(&self, revision: i64) -> (String, Vec<u8>) {
        let dir = format!("{}held/{revision:0DIGITS$}/", self.root);
        let end = prefix_end(&dir);
        (dir, end)
    }

    /// The keys of `kind` (`rollouts`, `done`, `held`) of every rollout older than
    /// `revision`: `(start, end)`.
    pub fn older(&self, kind: &str, revision: i64) -> (String, String) {
        let dir = self.sub(kind);
        let end = format!("{dir}{revision:0DIGITS$}");
        (dir, end)
    }

    /// `ROOT/kind/`.
    fn sub(&self, kind: &str) -> String {
        format!("{}{kind}/", self.root)
    }

    /// What `key` stands for; None for keys of no known kind (left alone).
    pub fn kind(&self, key: &[u8]) -> Option<Kind> {
        let rest = std::str::from_utf8(key).ok()?.strip_prefix(&self.root)?;
        let (kind, rest) = rest.split_once('/')?;
        let (revision, node) = match rest.split_once('/') {
            Some((revision, node)) if !node.is_empty() && !node.contains('/') => {
                (revision, Some(node))
            }
            Some(_) => return None,
            None => (rest, None),
        };
        if revision.len() != DIGITS || !revision.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let revision: i64 = revision.parse().ok()?;
        let node = node.map(str::to_string);
        match (kind, node) {
            ("rollouts", None) => Some(Kind::Marker(revision)),
            ("queue", Some(node)) => Some(Kind::Queue(revision, node)),
            ("done", Some(node)) => Some(Kind::Done(revision, node)),
            ("held", Some(node)) => Some(Kind::Held(revision, node)),
            _ => None,
        }
    }
}

/// The end of the range of keys starting with `prefix`.
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    // A prefix ending in '/' never ends in 0xff: one increment is enough.
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

/// A key-value as the group's view keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// When the key was created (orders a rollout's queue).
    pub create_revision: i64,
    /// Its lease (0: none).
    pub lease: i64,
    /// Its value.
    pub value: Vec<u8>,
}

impl From<&PbKeyValue> for Stored {
    fn from(kv: &PbKeyValue) -> Stored {
        Stored {
            create_revision: kv.create_revision,
            lease: kv.lease,
            value: kv.value.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_revision_and_parse_back() {
        let keys = Keys::new("/reconfig/rollout/", "web");
        assert_eq!(
            keys.queue(42, "n1"),
            "/reconfig/rollout/web/queue/00000000000000000042/n1"
        );
        assert!(keys.marker(9) < keys.marker(10));
        assert_eq!(keys.kind(keys.marker(7).as_bytes()), Some(Kind::Marker(7)));
        assert_eq!(
            keys.kind(keys.queue(7, "a").as_bytes()),
            Some(Kind::Queue(7, "a".into()))
        );
        assert_eq!(
            keys.kind(keys.done(7, "a").as_bytes()),
            Some(Kind::Done(7, "a".into()))
        );
        assert_eq!(
            keys.kind(keys.held(7, "a").as_bytes()),
            Some(Kind::Held(7, "a".into()))
        );
        for odd in [
            "/reconfig/rollout/web/queue/7/a",
            "/reconfig/rollout/web/queue/00000000000000000007",
            "/reconfig/rollout/web/rollouts/00000000000000000007/x",
            "/reconfig/rollout/web/other/00000000000000000007/x",
            "/reconfig/rollout/web2/queue/00000000000000000007/x",
        ] {
            assert_eq!(keys.kind(odd.as_bytes()), None, "{odd}");
        }
    }

    #[test]
    fn ranges_cover_what_they_say() {
        let keys = Keys::new("/p/", "g");
        let (start, end) = keys.older("done", 10);
        assert!(start.as_str() <= keys.done(9, "z").as_str());
        assert!(keys.done(9, "z") < end);
        assert!(keys.done(10, "a") >= end);
        let (start, end) = keys.markers_from(11);
        assert!(keys.marker(10) < start);
        assert!(keys.marker(i64::MAX).as_bytes() < end.as_slice());
        let (start, end) = keys.held_in(5);
        assert!(keys.held(5, "a") > start && keys.held(5, "a").as_bytes() < end.as_slice());
        assert!(keys.held(6, "a").as_bytes() > end.as_slice());
        assert_eq!(keys.root_end(), b"/p/g0".to_vec());
    }
}
