//! One task per entry: wait to be woken, then read the entry's keys at one revision,
//! render and apply — with everything that arrives meanwhile folded into one follow-up.
//!
//! Wake-ups use [`Notify`]: any number of `notify_one` calls while the worker is busy
//! leave a single permit, so a burst of thousands of writes costs a handful of renders and
//! the last render always sees the final state. A read that fails because etcd is away is
//! retried with backoff until it succeeds, so a change is never dropped. Renders and
//! commands are not interrupted by shutdown: the worker stops only between renders.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info_span, Instrument};

use crate::apply::ApplyOptions;
use crate::etcd::Etcd;
use crate::snapshot::Snapshot;
use crate::sync::{log_failure, sync_entry, Job};

/// What a worker needs besides its job.
pub struct Worker {
    /// The entry and its compiled template.
    pub job: Arc<Job>,
    /// The shared etcd connection.
    pub etcd: Etcd,
    /// Woken by the watch loop when the entry's keys change.
    pub wake: Arc<Notify>,
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
        self.render(&first).await;
        drop(first);
        loop {
            tokio::select! {
                () = self.wake.notified() => {}
                () = self.cancel.cancelled() => return,
            }
            if !self.quiet_period().await {
                return;
            }
            let Some(snapshot) = self.read().await else {
                return;
            };
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
                () = self.wake.notified() => {}
                () = self.cancel.cancelled() => return false,
            }
        }
    }

    /// Reads the entry's keys, retrying while etcd is unreachable; None when cancelled.
    async fn read(&self) -> Option<Snapshot> {
        let keys: Vec<&str> = self.job.entry.read_keys().collect();
        self.etcd
            .snapshot_retrying(&keys, &self.cancel)
            .instrument(info_span!("entry", id = %self.job.entry.id))
            .await
    }

    async fn render(&self, snapshot: &Snapshot) {
        if let Err(e) = sync_entry(&self.job, snapshot, &self.options).await {
            log_failure(&self.job.entry, &e);
        }
    }
}
