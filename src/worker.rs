//! One task per entry: wait to be woken, then read the entry's keys at one revision,
//! render and apply — with everything that arrives meanwhile folded into one follow-up.
//!
//! Wake-ups carry the etcd revision that made them: a render that read at revision R
//! already covers every change up to R, so a wake-up for such a change is dropped (one
//! transaction touching several watched keys renders once). Any number of wake-ups while
//! the worker is busy leave a single pending one, so a burst of thousands of writes costs
//! a handful of renders and the last render always sees the final state. A read that fails because etcd is away is
//! retried with backoff until it succeeds, so a change is never dropped. Renders and
//! commands are not interrupted by shutdown: the worker stops only between renders.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::apply::ApplyOptions;
use crate::etcd::Etcd;
use crate::snapshot::Snapshot;
use crate::sync::{log_failure, sync_entry, Job};

/// How the watch loop tells a worker that its keys changed, and up to which revision.
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

    /// Waits for a request (returns at once if one came since the last wait).
    async fn requested(&self) {
        self.notify.notified().await;
    }

    /// The newest revision asked for.
    fn wanted(&self) -> i64 {
        self.wanted.load(Ordering::Acquire)
    }
}

/// What a worker needs besides its job.
pub struct Worker {
    /// The entry and its compiled template.
    pub job: Arc<Job>,
    /// The shared etcd connection.
    pub etcd: Etcd,
    /// Woken by the watch loop when the entry's keys change.
    pub wake: Arc<Wake>,
    /// Preview or write.
    pub options: ApplyOptions,
    /// Quiet time to wait for before rendering.
    pub debounce: Option<Duration>,
    /// Stops the worker between renders (never during a write).
    pub cancel: CancellationToken,
}

impl Worker {
    /// Renders `first` (the start-up snapshot) once, then re-renders on every wake-up.
    pub async fn run(self, first: Arc<Snapshot>) {
        let mut rendered = first.revision();
        self.render(&first).await;
        drop(first);
        loop {
            tokio::select! {
                () = self.wake.requested() => {}
                () = self.cancel.cancelled() => return,
            }
            if self.wake.wanted() <= rendered {
                continue;
            }
            if !self.quiet_period().await {
                return;
            }
            let Some(snapshot) = self.read().await else {
                return;
            };
            rendered = snapshot.revision();
            self.render(&snapshot).await;
        }
    }

    /// Waits until no wake-up came for `debounce`; false when cancelled meanwhile.
    async fn quiet_period(&self) -> bool {
        let Some(quiet) = self.debounce.filter(|d| !d.is_zero()) else {
            return true;
        };
        loop {
            tokio::select! {
                () = tokio::time::sleep(quiet) => return true,
                () = self.wake.requested() => {}
                () = self.cancel.cancelled() => return false,
            }
        }
    }

    /// Reads the entry's keys, retrying while etcd is unreachable; None when cancelled.
    async fn read(&self) -> Option<Snapshot> {
        let keys: Vec<&str> = self.job.entry.read_keys().collect();
        self.etcd.snapshot_retrying(&keys, &self.cancel).await
    }

    async fn render(&self, snapshot: &Snapshot) {
        if let Err(e) = sync_entry(&self.job, snapshot, &self.options).await {
            log_failure(&self.job.entry, &e);
        }
    }
}
