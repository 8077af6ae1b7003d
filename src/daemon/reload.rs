//! Reloads follow files: a worker swaps the new target in at once and asks its entry's
//! reload task to reload the service. The task reloads at most once per reload interval:
//! the first reload after a quiet interval runs at once, changes inside the interval fold
//! into one reload at its end. A service is never reloaded for every change of a burst, and
//! a file never waits for the reload of the change before it.
//!
//! A reload that fails is tried again with a backoff (about a second at first, doubling to
//! `--retry-cap`) until it succeeds or a newer change's reload takes its place: a service
//! that was restarting, or a systemd that was busy, gets the new configuration once it can.
//!
//! When the generation stops, a reload still waiting for the end of its interval (or for its
//! retry) runs at once: a file that changed is never left without its reload. Each reload's
//! outcome is recorded in the entry's state (a reload still due survives a restart).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info};

use crate::etcd::{until, Backoff};
use crate::pipeline::{self, Job};
use crate::service::{retry, Reloader, Status};

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
    /// Paces the retries of a failed reload.
    pub backoff: Backoff,
    /// When to try again a reload that failed (at start-up, the first sync's own).
    pub retry_at: Option<Instant>,
}

impl ReloadTask {
    /// Reloads as asked, paced by the interval, retrying failures, until flushed.
    pub async fn run(mut self) {
        let mut last = self.last;
        loop {
            tokio::select! {
                () = self.pending.notify.notified() => {}
                () = until(self.retry_at) => self.pending.request(),
                () = self.flush.cancelled() => {
                    if self.pending.take() || self.retry_at.is_some() {
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
                self.retry_at = if reload(&self.job, &self.child, &self.status).await {
                    self.backoff.reset();
                    None
                } else {
                    let delay = self.backoff.next_delay();
                    info!(entry = %self.job.entry.id, "reload {}", retry::retrying_in(delay));
                    Some(Instant::now() + delay)
                };
            }
        }
    }
}

/// Reloads an entry's service now: runs `reloadcmd` and sends `reloadsignal` (dropped while
/// no child runs), recording the outcome; whether it succeeded. The first sync calls it
/// directly, so that the child starts after the start-up reloads, never in the middle of
/// them.
pub async fn reload(job: &Job, child: &Reloader, status: &Status) -> bool {
    let entry = &job.entry;
    debug!(entry = %entry.id, "reloading");
    let result = pipeline::reload(job).await;
    if let Some(signal) = entry.reloadsignal {
        child.send(signal);
    }
    if let Err(e) = &result {
        error!(entry = %entry.id, "{e}");
    }
    let ok = result.is_ok();
    status.record_reload(&entry.id, result.map_err(|e| e.to_string()));
    ok
}
