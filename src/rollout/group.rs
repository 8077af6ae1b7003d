//! A group's rollouts as one node sees them (read at one revision, then kept up to date by a
//! watch), and the two rules every node applies to that view: which rollout its change
//! belongs to ([`place`]) and whether it may go now ([`decide`]).
//!
//! The window rule: in rollout R, `pending` are the queued nodes without a done marker, in
//! the order etcd created their queue keys; while fewer than `canary` nodes are done, the
//! window is `canary - done` (the canaries go alone), then `max_parallel`. A node may go when
//! its place in `pending` is inside the window less the nodes still running an older
//! rollout, and nobody failed R. A node stays pending until it writes its done marker, so
//! at most `max_parallel` nodes of the group are ever between swap and baked; a node that
//! dies leaves `pending` when its lease expires, and the next one moves up.

use std::collections::BTreeMap;

use etcd_client::KeyValue;
use serde::{Deserialize, Serialize};

use super::keys::{Keys, Kind, Stored};

/// What a rollout key holds: when, and for a failure why, for a marker who started it, for
/// a queued node whether it is running.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// `waiting` or `running` (queue keys).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub state: String,
    /// The node that wrote it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    /// Why the node failed (held keys).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// When it was written (RFC 3339, the writer's clock: for people only).
    #[serde(default)]
    pub at: String,
}

impl Note {
    /// A note by `node` now, in `state`, for `reason`.
    pub fn now(node: &str, state: &str, reason: &str) -> Note {
        Note {
            state: state.to_string(),
            node: node.to_string(),
            reason: reason.to_string(),
            at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        }
    }

    /// The note as stored.
    pub fn bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    fn parse(value: &[u8]) -> Note {
        serde_json::from_slice(value).unwrap_or_default()
    }
}

/// A node in a rollout's queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// When its key was created: its place in the queue.
    pub create_revision: i64,
    /// Its lease.
    pub lease: i64,
    /// Whether it has its go (between swap and done).
    pub running: bool,
    /// When it last changed state.
    pub at: String,
}

/// One rollout of the group: change R.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rollout {
    /// Its marker (none once a newer rollout started).
    pub marker: Option<Note>,
    /// The nodes waiting or running, by name.
    pub queue: BTreeMap<String, Queued>,
    /// The nodes done, by name.
    pub done: BTreeMap<String, Note>,
    /// The nodes that failed, by name: any holds the rollout.
    pub held: BTreeMap<String, Note>,
}

impl Rollout {
    fn is_empty(&self) -> bool {
        self.marker.is_none()
            && self.queue.is_empty()
            && self.done.is_empty()
            && self.held.is_empty()
    }

    /// The queued nodes without a done marker, in queue order.
    pub fn pending(&self) -> Vec<(&str, &Queued)> {
        let mut pending: Vec<(&str, &Queued)> = self
            .queue
            .iter()
            .filter(|(node, _)| !self.done.contains_key(*node))
            .map(|(node, queued)| (node.as_str(), queued))
            .collect();
        pending.sort_by_key(|(node, q)| (q.create_revision, *node));
        pending
    }

    /// The first failure, if any.
    pub fn first_failure(&self) -> Option<(&str, &Note)> {
        self.held
            .iter()
            .min_by(|a, b| a.1.at.cmp(&b.1.at))
            .map(|(node, note)| (node.as_str(), note))
    }

    fn running(&self) -> usize {
        self.queue
            .iter()
            .filter(|(node, q)| q.running && !self.done.contains_key(*node))
            .count()
    }
}

/// A group's keys by rollout, as of one etcd revision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Group {
    rollouts: BTreeMap<i64, Rollout>,
}

/// How far a rollout may go at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most nodes between swap and baked.
    pub max_parallel: usize,
    /// Nodes that go alone first.
    pub canary: usize,
}

/// A change a node has to apply: the revision that made it (0 when not known: the node
/// read its data at start-up) and the revision its data was read at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// The revision of the change, as the watch reported it; 0 when not known.
    pub trigger: i64,
    /// The revision the rendered data was read at.
    pub read_at: i64,
}

/// Which rollout a change belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// The group's current rollout.
    Join(i64),
    /// A new rollout, newer than every other of the group.
    Start(i64),
    /// The group's current rollout is newer than the data the node rendered: read the data
    /// again at this revision or later first.
    Refresh(i64),
}

/// Whether a node may go now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Its turn: swap, reload, check health, bake.
    Go,
    /// Not yet: `ahead` pending nodes before it, `window` of them may run now.
    Wait {
        /// Pending nodes before it.
        ahead: usize,
    },
    /// A node failed this rollout: keep the previous file.
    Held {
        /// The node that failed.
        node: String,
        /// Why.
        reason: String,
    },
    /// A newer rollout started: this one goes no further.
    Behind,
    /// The node has no place in the queue (never taken, or its lease expired).
    NotQueued,
    /// Its name is queued with another lease: another process uses the same node name
    /// (or this node's previous run, until its lease expires).
    Taken,
}

impl Group {
    /// The view of `kvs`, every key of the group read at one revision.
    pub fn read(keys: &Keys, kvs: &[KeyValue]) -> Group {
        let mut group = Group::default();
        for kv in kvs {
            let stored = Stored {
                create_revision: kv.create_revision(),
                lease: kv.lease(),
                value: kv.value().to_vec(),
            };
            group.put(keys, kv.key(), stored);
        }
        group
    }

    /// A key put.
    pub fn put(&mut self, keys: &Keys, key: &[u8], stored: Stored) {
        let Some(kind) = keys.kind(key) else {
            return;
        };
        let note = Note::parse(&stored.value);
        match kind {
            Kind::Marker(r) => self.rollout(r).marker = Some(note),
            Kind::Queue(r, node) => {
                let queued = Queued {
                    create_revision: stored.create_revision,
                    lease: stored.lease,
                    running: note.state == "running",
                    at: note.at,
                };
                self.rollout(r).queue.insert(node, queued);
            }
            Kind::Done(r, node) => {
                self.rollout(r).done.insert(node, note);
            }
            Kind::Held(r, node) => {
                self.rollout(r).held.insert(node, note);
            }
        }
    }

    /// A key deleted (or expired with its lease).
    pub fn delete(&mut self, keys: &Keys, key: &[u8]) {
        let Some(kind) = keys.kind(key) else {
            return;
        };
        let revision = match &kind {
            Kind::Marker(r) | Kind::Queue(r, _) | Kind::Done(r, _) | Kind::Held(r, _) => *r,
        };
        let Some(rollout) = self.rollouts.get_mut(&revision) else {
            return;
        };
        match kind {
            Kind::Marker(_) => rollout.marker = None,
            Kind::Queue(_, node) => drop(rollout.queue.remove(&node)),
            Kind::Done(_, node) => drop(rollout.done.remove(&node)),
            Kind::Held(_, node) => drop(rollout.held.remove(&node)),
        }
        if rollout.is_empty() {
            self.rollouts.remove(&revision);
        }
    }

    fn rollout(&mut self, revision: i64) -> &mut Rollout {
        self.rollouts.entry(revision).or_default()
    }

    /// The group's current rollout: the newest started.
    pub fn newest(&self) -> Option<i64> {
        self.rollouts
            .iter()
            .rev()
            .find(|(_, r)| r.marker.is_some())
            .map(|(revision, _)| *revision)
    }

    /// Rollout `revision`, if any key of it is left.
    pub fn get(&self, revision: i64) -> Option<&Rollout> {
        self.rollouts.get(&revision)
    }

    /// Every rollout with a key left, oldest first.
    pub fn rollouts(&self) -> impl Iterator<Item = (i64, &Rollout)> {
        self.rollouts.iter().map(|(r, rollout)| (*r, rollout))
    }

    /// `node`'s queue entry in rollout `revision`, if it holds `lease`.
    pub fn queued(&self, revision: i64, node: &str, lease: i64) -> Option<&Queued> {
        self.get(revision)?
            .queue
            .get(node)
            .filter(|q| q.lease == lease)
    }

    /// The rollouts where `node` is queued with `lease`.
    pub fn places_of(&self, node: &str, lease: i64) -> Vec<i64> {
        self.rollouts
            .iter()
            .filter(|(_, r)| r.queue.get(node).is_some_and(|q| q.lease == lease))
            .map(|(revision, _)| *revision)
            .collect()
    }
}

/// The rollout `change` of `node` belongs to. A change newer than the group's current
/// rollout starts one, labelled with the revision that made it; otherwise the node joins the
/// current rollout, after reading its data again when the current rollout is newer than
/// that data (so it never goes in a rollout with older content than the others). A node
/// that is done with the current rollout and still has a change (a new template, say)
/// starts a new rollout at the revision it read at.
pub fn place(group: &Group, node: &str, change: Change) -> Place {
    let Some(newest) = group.newest() else {
        return Place::Start(if change.trigger > 0 {
            change.trigger
        } else {
            change.read_at
        });
    };
    if change.trigger > newest {
        return Place::Start(change.trigger);
    }
    if change.read_at < newest {
        return Place::Refresh(newest);
    }
    let done = group.get(newest).is_some_and(|r| r.done.contains_key(node));
    match (done, change.read_at > newest) {
        (false, _) => Place::Join(newest),
        (true, true) => Place::Start(change.read_at),
        (true, false) => Place::Refresh(newest + 1),
    }
}

/// Whether `node` (queued with `lease`) may go now in rollout `revision`.
pub fn decide(group: &Group, revision: i64, node: &str, lease: i64, limits: Limits) -> Decision {
    if group.newest().is_some_and(|newest| newest > revision) {
        return Decision::Behind;
    }
    let Some(rollout) = group.get(revision) else {
        return Decision::NotQueued;
    };
    if let Some((failed, note)) = rollout.first_failure() {
        return Decision::Held {
            node: failed.to_string(),
            reason: note.reason.clone(),
        };
    }
    match rollout.queue.get(node) {
        None => return Decision::NotQueued,
        Some(q) if q.lease != lease => return Decision::Taken,
        Some(q) if q.running => return Decision::Go,
        Some(_) => {}
    }
    let pending = rollout.pending();
    let Some(place) = pending.iter().position(|(n, _)| *n == node) else {
        return Decision::NotQueued;
    };
    let done = rollout.done.len();
    let window = if done < limits.canary {
        (limits.canary - done).min(limits.max_parallel)
    } else {
        limits.max_parallel
    };
    let elsewhere: usize = group
        .rollouts
        .iter()
        .filter(|(r, _)| **r != revision)
        .map(|(_, r)| r.running())
        .sum();
    if place < window.saturating_sub(elsewhere) {
        Decision::Go
    } else {
        Decision::Wait { ahead: place }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_parallel: 3,
        canary: 2,
    };

    fn keys() -> Keys {
        Keys::new("/r/", "g")
    }

    /// A view built by puts: `(key, create_revision, lease, value)`.
    fn group(puts: &[(String, i64, i64, Note)]) -> Group {
        let mut g = Group::default();
        for (key, create, lease, note) in puts {
            let stored = Stored {
                create_revision: *create,
                lease: *lease,
                value: note.bytes(),
            };
            g.put(&keys(), key.as_bytes(), stored);
        }
        g
    }

    fn note(state: &str) -> Note {
        Note::now("x", state, "")
    }

    /// Rollout 10 with nodes n0..n{count} queued in that order (lease = 100 + i).
    fn queued(count: usize) -> Vec<(String, i64, i64, Note)> {
        let k = keys();
        let mut puts = vec![(k.marker(10), 11, 0, note(""))];
        for i in 0..count {
            let node = format!("n{i}");
            puts.push((
                k.queue(10, &node),
                20 + i as i64,
                100 + i as i64,
                note("waiting"),
            ));
        }
        puts
    }

    fn who_goes(g: &Group, count: usize) -> Vec<usize> {
        (0..count)
            .filter(|i| decide(g, 10, &format!("n{i}"), 100 + *i as i64, LIMITS) == Decision::Go)
            .collect()
    }

    #[test]
    fn canaries_go_alone_then_the_window_opens() {
        let k = keys();
        let mut puts = queued(8);
        let g = group(&puts);
        assert_eq!(who_goes(&g, 8), [0, 1]);
        assert_eq!(
            decide(&g, 10, "n5", 105, LIMITS),
            Decision::Wait { ahead: 5 }
        );
        // One canary done: the other canary still goes alone.
        puts.push((k.done(10, "n0"), 40, 0, note("")));
        let mut g = group(&puts);
        g.delete(&k, k.queue(10, "n0").as_bytes());
        assert_eq!(who_goes(&g, 8), [1]);
        // Both done: max_parallel at once.
        let done = Stored {
            create_revision: 41,
            lease: 0,
            value: Vec::new(),
        };
        g.put(&k, k.done(10, "n1").as_bytes(), done);
        g.delete(&k, k.queue(10, "n1").as_bytes());
        assert_eq!(who_goes(&g, 8), [2, 3, 4]);
    }

    #[test]
    fn a_dead_node_frees_its_place_and_a_failure_holds_everyone() {
        let k = keys();
        let mut g = group(&queued(4));
        g.delete(&k, k.queue(10, "n0").as_bytes());
        assert_eq!(who_goes(&g, 4), [1, 2]);
        g.put(
            &k,
            k.held(10, "n1").as_bytes(),
            Stored {
                create_revision: 50,
                lease: 0,
                value: Note::now("n1", "", "healthcmd failed").bytes(),
            },
        );
        assert_eq!(
            decide(&g, 10, "n3", 103, LIMITS),
            Decision::Held {
                node: "n1".into(),
                reason: "healthcmd failed".into()
            }
        );
    }

    #[test]
    fn nodes_running_an_older_rollout_take_their_slots() {
        let k = keys();
        let mut puts = queued(5);
        // Canary phase over in rollout 10.
        puts.push((k.done(10, "a"), 30, 0, note("")));
        puts.push((k.done(10, "b"), 31, 0, note("")));
        // Two nodes still running rollout 7, one waiting there (it cannot go: 10 is newer).
        puts.push((k.queue(7, "old1"), 8, 200, note("running")));
        puts.push((k.queue(7, "old2"), 9, 201, note("running")));
        puts.push((k.queue(7, "old3"), 9, 202, note("waiting")));
        let g = group(&puts);
        assert_eq!(who_goes(&g, 5), [0]);
        assert_eq!(decide(&g, 7, "old3", 202, LIMITS), Decision::Behind);
        // Nothing more goes in an older rollout.
        assert_eq!(decide(&g, 7, "old1", 200, LIMITS), Decision::Behind);
    }

    #[test]
    fn the_queue_knows_its_members() {
        let g = group(&queued(2));
        assert_eq!(decide(&g, 10, "n9", 1, LIMITS), Decision::NotQueued);
        assert_eq!(decide(&g, 10, "n0", 999, LIMITS), Decision::Taken);
        assert_eq!(decide(&g, 11, "n0", 100, LIMITS), Decision::NotQueued);
        assert_eq!(g.places_of("n1", 101), [10]);
        assert!(g.queued(10, "n1", 100).is_none());
        let running = group(&[(keys().queue(10, "n0"), 5, 1, note("running"))]);
        assert_eq!(decide(&running, 10, "n0", 1, LIMITS), Decision::Go);
    }

    #[test]
    fn changes_find_their_rollout() {
        let change = |trigger, read_at| Change { trigger, read_at };
        let empty = Group::default();
        assert_eq!(place(&empty, "n", change(5, 5)), Place::Start(5));
        assert_eq!(place(&empty, "n", change(0, 9)), Place::Start(9));
        let g = group(&queued(1));
        // The watch saw a newer change: a new rollout.
        assert_eq!(place(&g, "n", change(12, 12)), Place::Start(12));
        // The same change, or data read after it: the current rollout.
        assert_eq!(place(&g, "n", change(10, 10)), Place::Join(10));
        assert_eq!(place(&g, "n", change(0, 15)), Place::Join(10));
        // Data older than the current rollout: read again first.
        assert_eq!(place(&g, "n", change(8, 8)), Place::Refresh(10));
        assert_eq!(place(&g, "n", change(0, 9)), Place::Refresh(10));
        // Done with the current rollout and still a change: a new one, after a fresh read.
        let k = keys();
        let mut done = queued(0);
        done.push((k.done(10, "n"), 12, 0, note("")));
        let g = group(&done);
        assert_eq!(place(&g, "n", change(10, 10)), Place::Refresh(11));
        assert_eq!(place(&g, "n", change(10, 14)), Place::Start(14));
        assert_eq!(place(&g, "m", change(10, 10)), Place::Join(10));
    }

    #[test]
    fn deletes_forget_what_is_gone() {
        let k = keys();
        let mut g = group(&queued(1));
        assert_eq!(g.newest(), Some(10));
        g.delete(&k, k.queue(10, "n0").as_bytes());
        g.delete(&k, k.marker(10).as_bytes());
        assert_eq!(g, Group::default());
        g.delete(&k, b"/r/g/unknown");
        assert_eq!(g.newest(), None);
    }
}
