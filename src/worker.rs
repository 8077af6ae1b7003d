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
//!
//! That wake → quiet period → read cycle is [`Follow`], which `reconfig dispense` drives
//! too. A render that changed its target asks the supervised child for the entry's
//! `reloadsignal`.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::apply::{ApplyOptions, Outcome};
use crate::etcd::Etcd;
use crate::snapshot::Snapshot;
use crate::status::{Pass, Status};
use crate::supervise::Reloader;
use crate::sync::{log_failure, sync_entry, Job};
use crate::watch::Replica;

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
    /// The entry's watched tree as delivered by the watch, when the entry reads nothing
    /// else (no altkeys): renders then need no read from etcd.
    pub replica: Option<Arc<Replica>>,
    /// Preview or write.
    pub options: ApplyOptions,
    /// Quiet time to wait for before rendering.
    pub debounce: Option<Duration>,
    /// Stops the worker between renders (never during a write).
    pub cancel: CancellationToken,
    /// Where the entry's `reloadsignal` goes after its target changed.
    pub reloader: Reloader,
    /// Where the outcome of every render is recorded for monitoring.
    pub status: Arc<Status>,
}

impl Worker {
    /// Renders the entry from `snapshot` and applies it; a changed target asks the
    /// supervised child for the entry's `reloadsignal`; the outcome goes to the status
    /// registry. The daemon calls it with the start-up snapshot, [`Self::run`] with every
    /// later one.
    pub async fn sync(&self, snapshot: &Arc<Snapshot>) {
        let result = sync_entry(&self.job, snapshot, &self.options).await;
        let pass = Pass::of(&self.job.entry, &result);
        self.status
            .record(&self.job.entry.id, snapshot.revision(), pass);
        match result {
            Ok(Outcome::Changed) => {
                if let Some(signal) = self.job.entry.reloadsignal {
                    self.reloader.send(signal);
                }
            }
            Ok(Outcome::Unchanged | Outcome::Adjusted { .. } | Outcome::Preview { .. }) => {}
            Err(e) => log_failure(&self.job.entry, &e),
        }
    }

    /// Re-renders on every wake-up for a revision after `rendered`, until cancelled.
    pub async fn run(self, mut rendered: i64) {
        let keys: Vec<&str> = self.job.entry.read_keys().collect();
        let follow = Follow {
            etcd: &self.etcd,
            wake: &self.wake,
            replica: self.replica.as_deref(),
            debounce: self.debounce,
            cancel: &self.cancel,
        };
        while let Some(snapshot) = follow.next(&keys, rendered).await {
            rendered = snapshot.revision();
            // Boxed: applying (commands, file I/O) needs a large future, which an idle
            // worker would otherwise carry all the time — 500 entries, megabytes.
            Box::pin(self.sync(&snapshot)).await;
        }
    }
}

/// Following etcd keys after a first read: the part entry workers and `reconfig dispense`
/// share, so both coalesce, debounce, retry and stop alike.
pub struct Follow<'a> {
    /// The shared etcd connection.
    pub etcd: &'a Etcd,
    /// Woken by the watch loop when the keys change.
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
    /// (retrying while etcd is unreachable); None once cancelled. Wake-ups that arrive
    /// while the caller handles a snapshot fold into one.
    pub async fn next(&self, keys: &[&str], seen: i64) -> Option<Arc<Snapshot>> {
        loop {
            tokio::select! {
                () = self.wake.requested() => {}
                () = self.cancel.cancelled() => return None,
            }
            if self.wake.wanted() > seen {
                break;
            }
        }
        if !self.quiet_period().await {
            return None;
        }
        match self.replica {
            Some(replica) => Some(replica.latest()),
            // Boxed like the apply step: an idle worker should not carry a read's future.
            None => Box::pin(self.etcd.snapshot_retrying(keys, self.cancel))
                .await
                .map(Arc::new),
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
}
