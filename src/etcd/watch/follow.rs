//! Following watched keys after a first read — the part entry workers and `reconfig
//! dispense` share, so both coalesce, debounce, retry and stop alike.
//!
//! Wake-ups carry the etcd revision that made them: a render that read at revision R
//! already covers every change up to R, so a wake-up for such a change is dropped (one
//! transaction touching several watched keys renders once). Any number of wake-ups while
//! the follower is busy leave a single pending one, so a burst of thousands of writes costs
//! a handful of renders and the last render always sees the final state. A read that
//! fails because etcd is away is retried with backoff until it succeeds, so a change is
//! never dropped. A follower whose last change failed may ask to be woken at a time of its
//! choosing to try it again ([`Next::Retry`]), unless a newer change comes first.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::replica::Replica;
use crate::etcd::client::Etcd;
use crate::etcd::retry::until;
use crate::etcd::snapshot::Snapshot;

/// How the watch tells a follower that its keys changed, and up to which revision.
#[derive(Debug, Default)]
pub struct Wake {
    notify: Notify,
    wanted: AtomicI64,
}

impl Wake {
    /// Asks for a render that sees at least `revision`.
    pub fn request(&self, revision: i64) {
        self.wanted.fetch_max(revision, Ordering::AcqRel);
        self.notify.notify_one();
    }

    /// Waits for a request (returns at once if one came since the last wait). Whoever takes
    /// a wake-up this way and leaves it for the follower asks again ([`Self::request`]).
    pub async fn requested(&self) {
        self.notify.notified().await;
    }

    /// The newest revision asked for.
    pub fn wanted(&self) -> i64 {
        self.wanted.load(Ordering::Acquire)
    }
}

/// What a follower is woken for.
pub enum Next {
    /// A change: the snapshot to take it from.
    Changed(Arc<Snapshot>),
    /// The time asked for came before any change: try the last one again.
    Retry,
}

/// The wake → quiet period → read cycle of one follower.
pub struct Follow<'a> {
    /// The shared etcd connection.
    pub etcd: &'a Etcd,
    /// Woken by the watch when the keys change.
    pub wake: &'a Wake,
    /// The watched tree as the watch delivered it, when that is all that is needed:
    /// then nothing is read from etcd.
    pub replica: Option<&'a Replica>,
    /// Quiet time to wait for before reading.
    pub debounce: Option<Duration>,
    /// Ends the wait for the next snapshot.
    pub cancel: &'a CancellationToken,
}

impl Follow<'_> {
    /// Waits for a wake-up asking for a revision after `seen`, then for the quiet period,
    /// and takes the replica's tree, or reads the trees of `keys` at one revision
    /// (retrying while etcd is unreachable); or, when `retry_at` comes first,
    /// [`Next::Retry`]; None once cancelled. Wake-ups that arrive while the caller
    /// handles a snapshot fold into one.
    pub async fn next(&self, keys: &[&str], seen: i64, retry_at: Option<Instant>) -> Option<Next> {
        loop {
            tokio::select! {
                () = self.wake.requested() => {}
                () = until(retry_at) => return Some(Next::Retry),
                () = self.cancel.cancelled() => return None,
            }
            if self.wake.wanted() > seen {
                break;
            }
        }
        if let Some(quiet) = self.debounce.filter(|d| !d.is_zero()) {
            // Boxed: an idle follower should not carry the quiet period's timer either.
            if !Box::pin(self.quiet_period(quiet)).await {
                return None;
            }
        }
        match self.replica {
            Some(replica) => Some(Next::Changed(replica.latest())),
            // Boxed: an idle follower should not carry a read's future.
            None => tokio::select! {
                snapshot = Box::pin(self.etcd.snapshot_retrying(keys)) => {
                    Some(Next::Changed(Arc::new(snapshot)))
                }
                () = self.cancel.cancelled() => None,
            },
        }
    }

    /// Waits until no wake-up came for `quiet`; false when cancelled meanwhile.
    async fn quiet_period(&self, quiet: Duration) -> bool {
        loop {
            tokio::select! {
                () = tokio::time::sleep(quiet) => return true,
                () = self.wake.requested() => {}
                () = self.cancel.cancelled() => return false,
            }
        }
    }
}
