//! One entry's change under a fleet rollout ([`crate::rollout`]): the render is compared
//! with the target, and when it differs the node waits for its group's go — keeping the
//! previous file meanwhile — then swaps it in (with the entry's checks), reloads at once,
//! runs `healthcmd`, bakes, and writes its done marker. A check, reload or health failure
//! puts the previous content back, reloads it, and holds the rollout for the whole group.

use std::future::Future;

use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::step::{apply_render, apply_turn, confirm_turn, reload, Job, StepError};
use crate::apply::command;
use crate::apply::{AfterSwap, ApplyError, ApplyOptions, Before, Outcome};
use crate::rollout::{Change, Go, Member, Turn, Waiting};

/// What came of a change under a rollout.
#[derive(Debug)]
pub enum Rolled {
    /// The target already held the render: nothing to roll out (a mode or owner that
    /// drifted was fixed in place).
    Unchanged(Outcome),
    /// Swapped in, reloaded, healthy, baked, and done.
    Done,
    /// The group's rollout of this change is held: the target keeps its previous content.
    Held {
        /// The rollout's revision.
        revision: i64,
        /// The node that failed.
        node: String,
        /// Why.
        reason: String,
    },
    /// The group's current rollout is newer than the data rendered: read at this revision
    /// or later, render, and roll again.
    Refresh(i64),
    /// A newer change came while the node waited (it keeps its place).
    Superseded,
    /// This node failed: before its turn, or writing (nothing changed; it may succeed
    /// later), or in its turn (`held`: the previous content is back and the group holds
    /// the rollout).
    Failed {
        /// What failed.
        error: StepError,
        /// The rollout this node held, when it held one.
        held: Option<i64>,
    },
    /// Stopped while waiting or baking.
    Stopped,
}

/// What a rolled-out change needs besides the change itself.
pub struct Rolling<'a> {
    /// The entry (with its `rollout` object).
    pub job: &'a Job,
    /// How files are written.
    pub options: &'a ApplyOptions,
    /// Ends a wait or a bake.
    pub cancel: &'a CancellationToken,
    /// Told of every reload of the entry's service, with its result (the daemon sends the
    /// entry's `reloadsignal` and records it).
    pub reloaded: &'a (dyn Fn(&Result<(), ApplyError>) + Send + Sync),
    /// Told where the node stands while it waits.
    pub waiting: &'a (dyn Fn(&Waiting) + Send + Sync),
}

impl Rolling<'_> {
    /// Rolls out `text`, rendered from data read at `change.read_at`, as this node's part
    /// in `member`'s group; `newer` ends the wait for the turn (a newer change to render).
    pub async fn roll(
        &self,
        member: &mut Member,
        change: Change,
        text: String,
        newer: impl Future<Output = ()>,
    ) -> Rolled {
        let entry = &self.job.entry;
        let failed = |error: StepError| Rolled::Failed { error, held: None };
        match Before::read(entry) {
            Ok(before) if before.holds(text.as_bytes()) => {
                member.leave().await;
                return match apply_render(self.job, change.read_at, text, self.options).await {
                    Ok(outcome) => Rolled::Unchanged(outcome),
                    Err(e) => failed(e),
                };
            }
            Ok(_) => {}
            Err(e) => return failed(e.into()),
        }
        let turn = tokio::select! {
            turn = member.turn(change, self.waiting) => Some(turn),
            () = newer => return Rolled::Superseded,
            () = self.cancel.cancelled() => None,
        };
        let go = match turn {
            None => {
                member.leave().await;
                return Rolled::Stopped;
            }
            Some(Err(e)) => return failed(e.into()),
            Some(Ok(Turn::Refresh(revision))) => return Rolled::Refresh(revision),
            Some(Ok(Turn::Held {
                revision,
                node,
                reason,
            })) => {
                warn!(
                    entry = %entry.id,
                    "rollout of group {} held at revision {revision}: {node}: {reason}; \
                     {} keeps its previous content until the data changes",
                    member.group(),
                    entry.target.display()
                );
                return Rolled::Held {
                    revision,
                    node,
                    reason,
                };
            }
            Some(Ok(Turn::Go(go))) => go,
        };
        info!(
            entry = %entry.id,
            "rollout of group {}: revision {}: this node's turn: swapping in {}",
            member.group(),
            go.revision,
            entry.target.display()
        );
        self.take_turn(member, go, change, text).await
    }

    /// Swap, reload, health, bake, done — or the previous content back and the rollout
    /// held.
    async fn take_turn(&self, member: &mut Member, go: Go, change: Change, text: String) -> Rolled {
        let entry = &self.job.entry;
        let before = match Before::read(entry) {
            Ok(before) => before,
            Err(e) => {
                member.leave().await;
                return Rolled::Failed {
                    error: e.into(),
                    held: None,
                };
            }
        };
        match apply_turn(self.job, change.read_at, text, self.options).await {
            Ok(_) => {}
            Err(StepError::Apply(
                e @ (ApplyError::Check { .. }
                | ApplyError::CheckAfterSwap { .. }
                | ApplyError::Rollback { .. }),
            )) => return self.hold(member, go, e).await,
            // A write that failed changed nothing: give the place up, try again later.
            Err(error) => {
                member.leave().await;
                return Rolled::Failed { error, held: None };
            }
        }
        if let Err(failed) = self.reload().await {
            return self.put_back(member, go, before, failed).await;
        }
        let spec = entry.rollout.as_ref();
        if let Some((cmd, timeout)) =
            spec.and_then(|s| Some((s.healthcmd.as_deref()?, s.health_timeout)))
        {
            if let Err(e) = command::run(entry, cmd, timeout).await {
                return self
                    .put_back(member, go, before, AfterSwap::Health(e))
                    .await;
            }
        }
        let bake = spec.map(|s| s.bake).unwrap_or_default();
        if !bake.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(bake) => {}
                () = self.cancel.cancelled() => {
                    member.leave().await;
                    return Rolled::Stopped;
                }
            }
        }
        confirm_turn(self.job);
        // Said before the done marker goes in: a line of the next node's turn always
        // comes after it.
        info!(
            entry = %entry.id,
            "rollout of group {}: revision {}: reloaded, healthy and baked",
            member.group(),
            go.revision
        );
        if let Err(e) = member.done(go).await {
            // The change is in; the place goes when the lease expires.
            error!(entry = %entry.id, "{e}");
        }
        Rolled::Done
    }

    /// Reloads the entry's service now (the rollout paces reloads, not the interval).
    async fn reload(&self) -> Result<(), AfterSwap> {
        let result = reload(self.job).await;
        (self.reloaded)(&result);
        match result {
            Ok(()) => Ok(()),
            Err(ApplyError::Reload { source, .. }) => Err(AfterSwap::Reload(source)),
            Err(other) => {
                error!(entry = %self.job.entry.id, "{other}");
                Ok(())
            }
        }
    }

    /// The change failed after its swap: the previous content back, reloaded, the rollout
    /// held.
    async fn put_back(
        &self,
        member: &mut Member,
        go: Go,
        before: Before,
        failed: AfterSwap,
    ) -> Rolled {
        let target = self.job.entry.target.clone();
        let error = match before.put_back(self.options.syncs).await {
            Ok(restored) => {
                confirm_turn(self.job);
                if let Err(e) = self.reload().await {
                    error!(entry = %self.job.entry.id, "reloading the previous content: {e}");
                }
                ApplyError::Unhealthy {
                    target,
                    source: failed,
                    restored,
                }
            }
            Err(source) => ApplyError::NotPutBack {
                target,
                failed,
                source,
            },
        };
        self.hold(member, go, error).await
    }

    /// This node failed its turn: the group holds the rollout.
    async fn hold(&self, member: &mut Member, go: Go, error: ApplyError) -> Rolled {
        let reason = error.to_string();
        if let Err(e) = member.held(go, &reason).await {
            error!(entry = %self.job.entry.id, "{e}");
        }
        error!(
            entry = %self.job.entry.id,
            "rollout of group {} held at revision {}: {} (this node): {reason}",
            member.group(),
            go.revision,
            member.node()
        );
        Rolled::Failed {
            error: error.into(),
            held: Some(go.revision),
        }
    }
}
