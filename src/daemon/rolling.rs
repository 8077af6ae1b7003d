//! A worker's step for an entry with a `rollout` object: each change becomes the node's part
//! in its group's rollout ([`Rolling`]). The wait for the node's turn gives way to a newer
//! change (which keeps the node's place when it belongs to the same rollout); the reload
//! runs at once, paced by the rollout rather than the reload interval; where the change
//! stands — waiting, held, applied — goes to the health registry.

use std::sync::Arc;

use tracing::info;

use super::worker::{retriable, Rollout, Synced, Worker};
use crate::apply::{ApplyError, ApplyOptions, Syncs};
use crate::etcd::{Backoff, Snapshot};
use crate::pipeline::{log_failure, pass_of, Rolled, Rolling};
use crate::rollout::{Change, Waiting};
use crate::service::{Pass, RolloutNote};

impl Worker {
    /// Takes `snapshot`'s change as this node's part in its group's rollout (`trigger`: the
    /// revision that made the change, 0 when not known); how it ended and the revision
    /// rendered (a fresh read's, when the group's rollout was newer than `snapshot`).
    pub(super) async fn roll(
        &self,
        rollout: &mut Rollout,
        mut snapshot: Arc<Snapshot>,
        trigger: i64,
        backoff: &mut Backoff,
    ) -> (Synced, i64) {
        let entry = &self.job.entry;
        let group = rollout.member.group().to_string();
        let options = ApplyOptions {
            syncs: Syncs::InPlace,
            ..self.options.clone()
        };
        let reloader = &rollout.reloader;
        let reloaded = |result: &Result<(), ApplyError>| {
            if let Some(signal) = entry.reloadsignal {
                reloader.send(signal);
            }
            let result = result.as_ref().map_err(ToString::to_string).copied();
            self.status.record_reload(&entry.id, result);
        };
        loop {
            let revision = snapshot.revision();
            let text = match self.render(&snapshot).await {
                Ok(text) => text,
                Err(e) => {
                    let result = Err(e);
                    self.status.record(&entry.id, revision, pass_of(&result));
                    if let Err(e) = result {
                        log_failure(entry, &e, None);
                    }
                    return (Synced::Failed { retry_in: None }, revision);
                }
            };
            let waiting = |now: &Waiting| {
                if let Waiting::Queued { revision, ahead } = now {
                    let note = RolloutNote::waiting(&group, *revision, *ahead);
                    self.status
                        .rollout(&entry.id, snapshot.revision(), note, false);
                }
            };
            let rolling = Rolling {
                job: &self.job,
                options: &options,
                cancel: &self.cancel,
                reloaded: &reloaded,
                waiting: &waiting,
            };
            let change = Change {
                trigger: trigger.min(revision),
                read_at: revision,
            };
            let rolled = rolling
                .roll(&mut rollout.member, change, text, self.newer(revision))
                .await;
            let synced = match rolled {
                Rolled::Refresh(at) => {
                    info!(
                        entry = %entry.id,
                        "rollout of group {group}: the group's rollout (revision {at}) is newer \
                         than the data rendered (revision {revision}): reading it again"
                    );
                    let keys: Vec<&str> = entry.read_keys().collect();
                    tokio::select! {
                        read = self.etcd.snapshot_retrying(&keys) => snapshot = Arc::new(read),
                        () = self.cancel.cancelled() => return (Synced::Unchanged, revision),
                    }
                    continue;
                }
                Rolled::Unchanged(outcome) => {
                    self.status
                        .record(&entry.id, revision, pass_of(&Ok(outcome)));
                    Synced::Unchanged
                }
                Rolled::Done => {
                    self.status.record(&entry.id, revision, Pass::Changed);
                    Synced::Unchanged
                }
                Rolled::Held {
                    revision: held,
                    node,
                    reason,
                } => {
                    let note = RolloutNote::held(&group, held, &node, &reason);
                    self.status.rollout(&entry.id, revision, note, false);
                    Synced::Unchanged
                }
                Rolled::Failed {
                    error,
                    held: Some(held),
                } => {
                    let reason = error.to_string();
                    self.status
                        .record(&entry.id, revision, pass_of(&Err(error)));
                    let note = RolloutNote::held(&group, held, rollout.member.node(), &reason);
                    self.status.rollout(&entry.id, revision, note, true);
                    Synced::Unchanged
                }
                Rolled::Failed { error, held: None } => {
                    let retry_in = retriable(&error).then(|| backoff.next_delay());
                    log_failure(entry, &error, retry_in);
                    let result = Err(error);
                    self.status.record(&entry.id, revision, pass_of(&result));
                    Synced::Failed { retry_in }
                }
                Rolled::Superseded | Rolled::Stopped => Synced::Unchanged,
            };
            return (synced, revision);
        }
    }

    /// Completes when a change newer than `revision` is asked for, leaving that wake-up for
    /// the worker's next step.
    async fn newer(&self, revision: i64) {
        loop {
            self.wake.requested().await;
            let wanted = self.wake.wanted();
            if wanted > revision {
                self.wake.request(wanted);
                return;
            }
        }
    }
}
