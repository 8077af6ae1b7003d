//! One task per entry: woken by the watch, it follows the entry's keys ([`Follow`]: wake-ups
//! coalesced by revision, debounce, reads retried while etcd is away) and takes the
//! pipeline's step for each new snapshot. Renders and commands are not interrupted by
//! shutdown: the worker stops only between steps. A step that changed its target asks the
//! entry's reload task for a reload ([`super::reload`]) and goes on with the next change.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::reload::Pending;
use crate::apply::{ApplyOptions, Outcome, Syncs};
use crate::etcd::watch::{Follow, Replica, Wake};
use crate::etcd::{Etcd, Snapshot};
use crate::pipeline::{log_failure, pass_of, step, Job};
use crate::service::Status;

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
    /// Where a reload is asked for after the target changed (None: the entry has no
    /// `reloadcmd` and no `reloadsignal`).
    pub reload: Option<Arc<Pending>>,
    /// Where the outcome of every step is recorded for monitoring.
    pub status: Arc<Status>,
}

impl Worker {
    /// Takes the step from `snapshot`, writing where `syncs` says, and records the outcome
    /// in the status registry; whether the target changed and has a reload to follow.
    pub async fn sync(&self, snapshot: &Arc<Snapshot>, syncs: Syncs) -> bool {
        let options = ApplyOptions {
            syncs,
            ..self.options.clone()
        };
        let result = step(&self.job, snapshot, &options).await;
        self.status
            .record(&self.job.entry.id, snapshot.revision(), pass_of(&result));
        match result {
            Ok(Outcome::Changed) => self.reload.is_some(),
            Ok(Outcome::Unchanged | Outcome::Adjusted { .. } | Outcome::Preview { .. }) => false,
            Err(e) => {
                log_failure(&self.job.entry, &e);
                false
            }
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
            // One entry's change at a time: its file is written on this thread.
            if Box::pin(self.sync(&snapshot, Syncs::InPlace)).await {
                if let Some(reload) = &self.reload {
                    reload.request();
                }
            }
        }
    }
}
