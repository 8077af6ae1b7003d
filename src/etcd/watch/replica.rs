//! A watched key's tree as the watch delivered it: renders of entries that need nothing
//! else take it instead of reading etcd again.

use std::sync::{Arc, Mutex};

use etcd_client::proto::PbEvent;

use crate::etcd::snapshot::{in_tree_bytes, Snapshot};

/// A watched key's tree kept up to date from the watch's own events, so an entry that
/// needs nothing else renders without asking etcd again. It is only ever published at a
/// revision boundary: etcd delivers all events of one revision of one watch in one
/// response, and a response is applied whole before anyone is woken.
#[derive(Debug)]
pub struct Replica {
    tree: Mutex<Arc<Snapshot>>,
}

impl Replica {
    /// A replica starting from `tree` (the key's tree, read at the revision the watch
    /// starts after).
    pub fn new(tree: Snapshot) -> Replica {
        Replica {
            tree: Mutex::new(Arc::new(tree)),
        }
    }

    /// The tree at the newest revision applied. Renders hold this copy while the next
    /// events are applied to a fresh one.
    pub fn latest(&self) -> Arc<Snapshot> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Arc<Snapshot>> {
        self.tree
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Applies events under `key` (the watch range also covers siblings such as `key-x`,
    /// which are skipped) and stands for `revision` after them.
    pub(super) fn apply(&self, key: &str, events: &[PbEvent], revision: i64) {
        let changes = events.iter().filter_map(|event| {
            let kv = event.kv.as_ref()?;
            let value = (event.r#type == PUT).then_some(kv.value.as_slice());
            in_tree_bytes(key, &kv.key).then_some((kv.key.as_slice(), value))
        });
        Arc::make_mut(&mut self.lock()).apply(revision, changes);
    }

    pub(super) fn replace(&self, tree: Snapshot) {
        *self.lock() = Arc::new(tree);
    }
}

/// etcd's event type of a put (`mvccpb.Event.EventType.PUT`).
const PUT: i32 = 0;
