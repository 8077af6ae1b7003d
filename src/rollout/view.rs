//! One node's view of its group: every key of the group as of one etcd revision, from a
//! read or a transaction's own read, then moved forward by a watch of the group's root (on
//! the process's connection, with the watch loop's reconnects and compaction handling). A
//! waiting node re-decides at every change; it never polls. Reads and events only ever move
//! the view forward: an event at or below the view's revision is already in it.

use std::sync::{Arc, Mutex, MutexGuard};

use etcd_client::proto::PbEvent;
use etcd_client::KeyValue;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::group::Group;
use super::keys::{Keys, Stored};
use crate::etcd::watch::{Range, SessionError, Sink, WatchLoop};
use crate::etcd::{Etcd, EtcdError};

/// etcd's event type of a delete (`mvccpb.Event.EventType.DELETE`).
const DELETE: i32 = 1;

/// A group's keys as of a revision, and the watch that keeps them current once started.
pub struct View {
    shared: Arc<Shared>,
    watch: Option<JoinHandle<()>>,
}

/// What the view and its watch share.
struct Shared {
    keys: Keys,
    state: Mutex<State>,
    changed: Notify,
}

/// The group and the revision it is at.
struct State {
    group: Group,
    revision: i64,
}

impl View {
    /// A view of `kvs`, the group's keys as read at `revision`.
    pub fn new(keys: Keys, kvs: &[KeyValue], revision: i64) -> View {
        let group = Group::read(&keys, kvs);
        View {
            shared: Arc::new(Shared {
                keys,
                state: Mutex::new(State { group, revision }),
                changed: Notify::new(),
            }),
            watch: None,
        }
    }

    /// `look` at the group as the view has it now.
    pub fn with<T>(&self, look: impl FnOnce(&Group) -> T) -> T {
        look(&self.shared.lock().group)
    }

    /// Takes a newer read of every key of the group (a transaction's own).
    pub fn replace(&self, kvs: &[KeyValue], revision: i64) {
        self.shared.replace(kvs, revision);
    }

    /// Drops `key` from the view: a key this node deleted, which the watch reports later.
    pub fn forget(&self, key: &str) {
        self.shared
            .lock()
            .group
            .delete(&self.shared.keys, key.as_bytes());
    }

    /// Starts following the group from the view's revision on, unless it already does.
    pub fn watch(&mut self, etcd: &Etcd) {
        if self.watch.is_some() {
            return;
        }
        let shared = self.shared.clone();
        let etcd = etcd.clone();
        let start = shared.lock().revision + 1;
        self.watch = Some(tokio::spawn(async move {
            let keys = &shared.keys;
            let range = Range {
                start: keys.root().as_bytes().to_vec(),
                end: keys.root_end(),
                next: start,
            };
            let sink = GroupSink {
                etcd: etcd.clone(),
                shared: shared.clone(),
            };
            WatchLoop::new(&etcd, vec![range], sink).run().await;
        }));
    }

    /// Waits for the next change of the view.
    pub async fn changed(&self) {
        self.shared.changed.notified().await;
    }
}

impl Drop for View {
    fn drop(&mut self) {
        if let Some(watch) = &self.watch {
            watch.abort();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn replace(&self, kvs: &[KeyValue], revision: i64) {
        let mut state = self.lock();
        if revision > state.revision {
            *state = State {
                group: Group::read(&self.keys, kvs),
                revision,
            };
        }
    }
}

/// The watch's sink: events into the view, a wake-up for the waiting node at each batch.
struct GroupSink {
    etcd: Etcd,
    shared: Arc<Shared>,
}

impl Sink for GroupSink {
    fn events(&mut self, _index: usize, events: Vec<PbEvent>) {
        let keys = &self.shared.keys;
        let mut state = self.shared.lock();
        for event in &events {
            let Some(kv) = &event.kv else {
                continue;
            };
            if kv.mod_revision <= state.revision {
                continue;
            }
            if event.r#type == DELETE {
                state.group.delete(keys, &kv.key);
            } else {
                state.group.put(keys, &kv.key, Stored::from(kv));
            }
        }
        if let Some(last) = events.last().and_then(|e| e.kv.as_ref()) {
            state.revision = state.revision.max(last.mod_revision);
        }
    }

    fn flush(&mut self) {
        self.shared.changed.notify_one();
    }

    async fn compacted(&mut self, _index: usize, from: i64, oldest: i64) -> Result<i64, EtcdError> {
        let keys = &self.shared.keys;
        let read = keys.read(&self.etcd).await?;
        let revision = read.header().map_or(0, |h| h.revision());
        self.shared.replace(read.kvs(), revision);
        info!(
            "rollout group {}: revision {from} was compacted (oldest kept: {oldest}); read again \
             at revision {revision}",
            keys.root()
        );
        Ok(revision + 1)
    }

    fn state(&mut self, broken: Option<&SessionError>) {
        let root = self.shared.keys.root();
        match broken {
            Some(e) => warn!(
                "rollout group {root}: watch lost ({e}); a node waiting for its turn keeps its \
                 previous file until etcd answers"
            ),
            None => info!("rollout group {root}: watch re-established"),
        }
    }
}
