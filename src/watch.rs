//! The watch loop: one gRPC watch stream for the whole process, one watch per distinct
//! key on it, and the revision bookkeeping that makes a lost update impossible.
//!
//! Each watched key remembers the revision after the last event it delivered. When the
//! stream breaks (member killed, network gone, cluster down), it is re-opened with capped
//! exponential backoff and every watch resumes at exactly that revision, so events that
//! happened in between are replayed. When that revision has been compacted away, the key's
//! tree is re-read at the current revision, its subscribers re-render from that, and the
//! watch goes on from there.
//!
//! The loop does no rendering itself: it applies each response to the key's [`Replica`]
//! (the tree as the watch delivered it) and wakes the key's subscribers (the entry
//! workers), which render from the replica — or, when they also need other keys, read
//! everything afresh at one revision — and apply. All responses already waiting on the
//! stream are handled before anyone is woken, so one transaction touching several watched
//! keys wakes an entry once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{Event, EventType, WatchOptions, WatchResponse, WatchStream};
use futures_util::FutureExt;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::etcd::Etcd;
use crate::snapshot::{in_tree, tree_range, Snapshot};
use crate::status::Status;
use crate::worker::Wake;

/// Longest wait between two attempts to re-open the watch.
const RETRY_CAP: Duration = Duration::from_secs(5);

/// A watched key and the entries to wake when its tree changes.
pub struct Watched {
    /// The key; its whole tree is watched.
    pub key: String,
    /// One wake-up handle per interested entry.
    pub subscribers: Vec<Arc<Wake>>,
    /// The key's tree as the watch delivered it, for subscribers that read nothing else.
    pub replica: Arc<Replica>,
}

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

    /// Applies one response's events under `key` (the watch range also covers siblings
    /// such as `key-x`, which are skipped).
    fn apply(&self, key: &str, events: &[Event], revision: i64) {
        let changes = events.iter().filter_map(|event| {
            let kv = event.kv()?;
            let name = std::str::from_utf8(kv.key()).ok()?;
            let value = match event.event_type() {
                EventType::Put => Some(kv.value()),
                EventType::Delete => None,
            };
            in_tree(key, name).then_some((name, value))
        });
        Arc::make_mut(&mut self.lock()).apply(revision, changes);
    }

    fn replace(&self, tree: Snapshot) {
        *self.lock() = Arc::new(tree);
    }
}

/// Why a watch session ended; the loop reconnects after any of these.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("{0}")]
    Etcd(String),
    #[error("watch stream closed by etcd")]
    Closed,
    #[error("watch on {key} canceled by etcd: {reason}")]
    Canceled { key: String, reason: String },
}

impl From<etcd_client::Error> for SessionError {
    fn from(e: etcd_client::Error) -> Self {
        SessionError::Etcd(e.to_string())
    }
}

/// Watches every key from `start_revision` on until cancelled, waking subscribers on change
/// and recording in `status` whether etcd answers.
pub async fn run(
    etcd: Etcd,
    watched: Vec<Watched>,
    start_revision: i64,
    cancel: CancellationToken,
    status: Arc<Status>,
) {
    if watched.is_empty() {
        return;
    }
    let mut next = vec![start_revision; watched.len()];
    // Revisions subscribers must be woken for; kept across sessions so that a stream that
    // breaks in the middle of a batch cannot swallow a wake-up already booked.
    let mut woken = vec![0; watched.len()];
    let mut backoff = Backoff::new(RETRY_CAP);
    let mut healthy = true;
    loop {
        let result = tokio::select! {
            r = session(&etcd, &watched, &mut next, &mut healthy, &mut backoff, &status, &mut woken) => r,
            () = cancel.cancelled() => return,
        };
        wake(&watched, &mut woken);
        if let Err(e) = result {
            if healthy {
                warn!("watch lost ({e}); reconnecting to {}", etcd.endpoints());
                status.etcd_down();
                healthy = false;
            } else {
                debug!("watch still down: {e}");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff.next_delay()) => {}
            () = cancel.cancelled() => return,
        }
    }
}

/// The watches of one stream: etcd's watch id → index of the watched key. A watch that
/// etcd canceled (compaction) keeps its id reserved on the stream, so a re-created watch
/// gets a fresh id.
struct Ids {
    index_of: HashMap<i64, usize>,
    next_id: i64,
}

impl Ids {
    fn new() -> Ids {
        Ids {
            index_of: HashMap::new(),
            next_id: 1,
        }
    }

    /// A create request for the tree of `key` (watched key number `index`) from `revision`.
    fn create(&mut self, index: usize, key: &str, revision: i64) -> (Vec<u8>, WatchOptions) {
        let id = self.next_id;
        self.next_id += 1;
        self.index_of.insert(id, index);
        let (start, end) = tree_range(key);
        let options = WatchOptions::new()
            .with_range(end)
            .with_start_revision(revision)
            .with_watch_id(id);
        (start, options)
    }
}

/// One stream's life: open it, create every watch, then dispatch until it breaks.
async fn session(
    etcd: &Etcd,
    watched: &[Watched],
    next: &mut [i64],
    healthy: &mut bool,
    backoff: &mut Backoff,
    status: &Status,
    woken: &mut [i64],
) -> Result<(), SessionError> {
    let mut ids = Ids::new();
    let mut client = etcd.client().watch_client();
    let (key, options) = ids.create(0, &watched[0].key, next[0]);
    let mut stream = etcd
        .bounded(client.watch(key, Some(options)))
        .await
        .map_err(|e| SessionError::Etcd(e.to_string()))?;
    for (i, w) in watched.iter().enumerate().skip(1) {
        let (key, options) = ids.create(i, &w.key, next[i]);
        stream.watch(key, Some(options)).await?;
    }
    let mut created = 0;
    loop {
        let first = stream.message().await?.ok_or(SessionError::Closed)?;
        let mut response = Some(first);
        while let Some(r) = response {
            if r.created() && !r.canceled() {
                created += 1;
                if created == watched.len() {
                    backoff.reset();
                    status.etcd_up();
                    if !*healthy {
                        info!("watch re-established on {}", etcd.endpoints());
                        status.watch_reconnected();
                        *healthy = true;
                    }
                }
            }
            handle(etcd, watched, next, &mut ids, &mut stream, &r, woken).await?;
            response = match stream.message().now_or_never() {
                Some(r) => Some(r?.ok_or(SessionError::Closed)?),
                None => None,
            };
        }
        wake(watched, woken);
    }
}

/// Wakes the subscribers of every key with a booked revision, and clears the bookings.
fn wake(watched: &[Watched], woken: &mut [i64]) {
    for (w, revision) in watched.iter().zip(woken.iter_mut()) {
        let revision = std::mem::take(revision);
        if revision > 0 {
            w.subscribers.iter().for_each(|s| s.request(revision));
        }
    }
}

/// Books one response: events advance the key's revision and record the revision its
/// subscribers must see; a compacted watch re-starts at the current revision (with a new
/// id) and asks its subscribers to re-read at that revision. Any other cancellation —
/// including a watch etcd refused to create — ends the session, which then reconnects.
async fn handle(
    etcd: &Etcd,
    watched: &[Watched],
    next: &mut [i64],
    ids: &mut Ids,
    stream: &mut WatchStream,
    response: &WatchResponse,
    woken: &mut [i64],
) -> Result<(), SessionError> {
    let index = ids.index_of.get(&response.watch_id()).copied();
    if response.canceled() {
        let key = index.map_or_else(|| "a watched key".to_string(), |i| watched[i].key.clone());
        let (Some(index), true) = (index, response.compact_revision() > 0) else {
            return Err(SessionError::Canceled {
                key,
                reason: response.cancel_reason().to_string(),
            });
        };
        ids.index_of.remove(&response.watch_id());
        let tree = etcd
            .snapshot([key.as_str()])
            .await
            .map_err(|e| SessionError::Etcd(e.to_string()))?;
        let current = tree.revision();
        watched[index].replica.replace(tree);
        warn!(
            "revision {} of {key} was compacted (oldest kept: {}); re-reading at revision {current}",
            next[index],
            response.compact_revision()
        );
        next[index] = current + 1;
        let (start, options) = ids.create(index, &key, next[index]);
        stream.watch(start, Some(options)).await?;
        woken[index] = current;
        return Ok(());
    }
    let Some(index) = index else {
        return Ok(());
    };
    if let Some(last) = response.events().last() {
        next[index] = last.kv().map_or(next[index], |kv| kv.mod_revision() + 1);
        watched[index]
            .replica
            .apply(&watched[index].key, response.events(), next[index] - 1);
        debug!(
            "{} event(s) under {} up to revision {}",
            response.events().len(),
            watched[index].key,
            next[index] - 1
        );
        woken[index] = next[index] - 1;
    }
    Ok(())
}
