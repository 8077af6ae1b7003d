//! Reloads follow files: a worker swaps the new target in at once and asks its entry's
//! reload task to reload the service. The task reloads at most once per reload interval:
//! the first reload after a quiet interval runs at once, changes inside the interval fold
//! into one reload at its end. A service is never reloaded for every change of a burst, and
//! a file never waits for the reload of the change before it.
//!
//! When the generation stops, a reload still waiting for the end of its interval runs at
//! once: a file that changed is never left without its reload.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error};

use crate::apply;
use crate::pipeline::Job;
use crate::service::{Reloader, Status};

/// A reload asked for and not yet run; shared by an entry's worker and its reload task.
#[derive(Debug, Default)]
pub struct Pending {
    wanted: AtomicBool,
    notify: Notify,
}

impl Pending {
    /// Asks for a reload (any number of asks before it runs make one reload).
    pub fn request(&self) {
        self.wanted.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    /// Takes the request, if there is one.
    fn take(&self) -> bool {
        self.wanted.swap(false, Ordering::AcqRel)
    }
}

/// One entry's reload task.
pub struct ReloadTask {
    /// When the last reload started (at start-up, the first sync's own).
    pub last: Option<Instant>,
    /// The entry.
    pub job: Arc<Job>,
    /// Asked for by the entry's worker.
    pub pending: Arc<Pending>,
    /// Least time between the starts of two reloads.
    pub interval: Duration,
    /// Where the entry's `reloadsignal` goes.
    pub child: Reloader,
    /// Where every reload is recorded.
    pub status: Arc<Status>,
    /// Set once the entry's worker is done: a waiting reload then runs at once, and the
    /// task ends.
    pub flush: CancellationToken,
}

impl ReloadTask {
    /// Reloads as asked, paced by the interval, until flushed.
    pub async fn run(self) {
        let mut last = self.last;
        loop {
            tokio::select! {
                () = self.pending.notify.notified() => {}
                () = self.flush.cancelled() => {
                    if self.pending.take() {
                        reload(&self.job, &self.child, &self.status).await;
                    }
                    return;
                }
            }
            if let Some(due) = last.map(|at| at + self.interval) {
                tokio::select! {
                    () = tokio::time::sleep_until(due) => {}
                    () = self.flush.cancelled() => {}
                }
            }
            if self.pending.take() {
                last = Some(Instant::now());
                reload(&self.job, &self.child, &self.status).await;
            }
        }
    }
}

/// Reloads an entry's service now: runs `reloadcmd` and sends `reloadsignal` (dropped while
/// no child runs), recording the outcome. The first sync calls it directly, so that the
/// child starts after the start-up reloads, never in the middle of them.
pub async fn reload(job: &Job, child: &Reloader, status: &Status) {
    let entry = &job.entry;
    debug!(entry = %entry.id, "reloading");
    let result = apply::reload(entry).await;
    if let Some(signal) = entry.reloadsignal {
        child.send(signal);
    }
    if let Err(e) = &result {
        error!(entry = %entry.id, "{e}");
    }
    status.record_reload(&entry.id, result.map_err(|e| e.to_string()));
}
