//! One task per entry: woken by the watch, it follows the entry's keys ([`Follow`]: wake-ups
//! coalesced by revision, debounce, reads retried while etcd is away) and takes the
//! pipeline's step for each new snapshot. Renders and commands are not interrupted by
//! shutdown: the worker stops only between steps. A step that changed its target asks the
//! supervised child for the entry's `reloadsignal`.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::apply::{ApplyOptions, Outcome};
use crate::etcd::watch::{Follow, Replica, Wake};
use crate::etcd::{Etcd, Snapshot};
use crate::pipeline::{log_failure, pass_of, step, Job};
use crate::service::{Reloader, Status};

/// One entry's worker and everything it needs besides its job.
pub struct Worker {
    /// The entry and its compiled template.
    pub job: Arc<Job>,
    /// The shared etcd connection.
    pub etcd: Etcd,
    /// Woken by the watch when the entry's keys change.
    pub wake: Arc<Wake>,
    /// The entry's watched tree as delivered by the watch, when the entry reads nothing
    /// else (no altkeys): renders then need no read from etcd.
    pub replica: Option<Arc<Replica>>,
    /// Preview or write.
    pub options: ApplyOptions,
    /// Quiet time to wait for before rendering.
    pub debounce: Option<Duration>,
    /// Stops the worker between steps (never during a write).
    pub cancel: CancellationToken,
    /// Where the entry's `reloadsignal` goes after its target changed.
    pub reloader: Reloader,
    /// Where the outcome of every step is recorded for monitoring.
    pub status: Arc<Status>,
}

impl Worker {
    /// Takes the step from `snapshot`; a changed target asks the supervised child for
    /// the entry's `reloadsignal`; the outcome goes to the status registry. The daemon
    /// calls it with the start-up snapshot, [`Self::run`] with every later one.
    pub async fn sync(&self, snapshot: &Arc<Snapshot>) {
        let result = step(&self.job, snapshot, &self.options).await;
        let pass = pass_of(&self.job.entry, &result);
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

    /// Takes the step for every wake-up for a revision after `rendered`, until cancelled.
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
