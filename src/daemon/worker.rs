//! One task per entry: woken by the watch, it follows the entry's keys ([`Follow`]: wake-ups
//! coalesced by revision, debounce, reads retried while etcd is away) and takes the
//! pipeline's step for each new snapshot. Renders and commands are not interrupted by
//! shutdown: the worker stops only between steps. A step that changed its target asks the
//! entry's reload task for a reload ([`super::reload`]) and goes on with the next change.
//!
//! Renders run on the daemon's one thread, where a change is cheapest, but only for a short
//! [`SLICE`]: a render that runs longer (a large tree, or a loop a value made long) is
//! stopped and run again on a thread of its own, and the entry's renders stay there until
//! one is quick again. So one entry's render never holds up the others, the watch,
//! `/healthz` or a signal for longer than a slice.
//!
//! A change whose file work or check failed is tried again, from the same snapshot, with a
//! backoff ([`crate::service::retry`]), until it succeeds or a newer change takes its place:
//! a failure outside the data (a full disk, a missing directory, a check that needs a file
//! not yet there) never leaves a target behind until the next change.
//!
//! An entry with a `rollout` object takes each change as its part in its group's rollout
//! instead ([`super::rolling`]): the first sync leaves such a change to the worker, which
//! waits for the group's go with the previous file in place.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::reload::Pending;
use crate::apply::{ApplyOptions, Before, Outcome, Syncs};
use crate::etcd::watch::{Follow, Next, Replica, Wake};
use crate::etcd::{Backoff, Etcd, Snapshot};
use crate::pipeline::{apply_render, log_failure, pass_of, render_kept, Job, StepError};
use crate::rollout::{self, Member};
use crate::service::{Reloader, Status};

/// How long a render may run on the daemon's thread before it moves to a thread of its own.
pub const SLICE: Duration = Duration::from_millis(50);

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
    /// Whether the entry's last render ran longer than a slice.
    pub slow: AtomicBool,
    /// The model of the entry's last render, when its tree is large enough to be kept and
    /// brought up to date rather than built again.
    pub model: Mutex<Option<Value>>,
    /// The entry's part in its rollout group, when it has a `rollout` object: its changes
    /// wait for the group's go, and reload at once ([`super::rolling`]). Boxed: most
    /// entries have none, and an idle worker's task is all the memory it holds.
    pub rollout: Option<Box<Rollout>>,
}

/// How a step ended, for what comes after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synced {
    /// The target changed: a reload follows, if the entry has one.
    Changed,
    /// Nothing to reload.
    Unchanged,
    /// It failed.
    Failed {
        /// When trying the same snapshot again may succeed: after how long.
        retry_in: Option<Duration>,
    },
    /// A change to roll out: it waits for the group's go in the worker's loop, not here.
    Deferred,
}

impl Worker {
    /// Takes the step from `snapshot`, writing where `syncs` says, and records the outcome
    /// in the status registry; a failure is logged, saying when it is tried again.
    pub async fn sync(
        &self,
        snapshot: &Arc<Snapshot>,
        syncs: Syncs,
        backoff: &mut Backoff,
    ) -> Synced {
        let options = ApplyOptions {
            syncs,
            ..self.options.clone()
        };
        let result = match self.render(snapshot).await {
            Ok(text) if self.to_roll_out(&text) => return Synced::Deferred,
            Ok(text) => apply_render(&self.job, snapshot.revision(), text, &options).await,
            Err(e) => Err(e),
        };
        self.status
            .record(&self.job.entry.id, snapshot.revision(), pass_of(&result));
        match result {
            Ok(Outcome::Changed) => {
                backoff.reset();
                Synced::Changed
            }
            Ok(Outcome::Unchanged | Outcome::Adjusted { .. } | Outcome::Preview { .. }) => {
                backoff.reset();
                Synced::Unchanged
            }
            Err(e) => {
                let retry_in = retriable(&e).then(|| backoff.next_delay());
                log_failure(&self.job.entry, &e, retry_in);
                Synced::Failed { retry_in }
            }
        }
    }

    /// Whether `text` is a change for the entry's rollout group (an entry with a `rollout`
    /// object whose target does not hold it; a preview has no rollout part).
    fn to_roll_out(&self, text: &str) -> bool {
        self.rollout.is_some()
            && Before::read(&self.job.entry).is_ok_and(|before| !before.holds(text.as_bytes()))
    }

    /// Renders from the entry's kept model (if any), keeping this render's.
    pub(super) async fn render(&self, snapshot: &Arc<Snapshot>) -> Result<String, StepError> {
        let kept = self.model.lock().expect("model").take();
        let (rendered, kept) = self.render_from(snapshot, kept).await;
        *self.model.lock().expect("model") = kept;
        rendered
    }

    /// Renders on this thread within a [`SLICE`], or on a thread of its own when the
    /// entry's renders run longer; gives the model to keep back.
    async fn render_from(
        &self,
        snapshot: &Arc<Snapshot>,
        mut kept: Option<Value>,
    ) -> (Result<String, StepError>, Option<Value>) {
        if !self.slow.load(Ordering::Relaxed) {
            match render_kept(&self.job, snapshot, Some(SLICE), &mut kept) {
                Err(StepError::Template(e)) if e.is_slice() => {
                    self.slow.store(true, Ordering::Relaxed);
                    info!(
                        entry = %self.job.entry.id,
                        "render runs long (over {} ms): rendering on a thread of its own",
                        SLICE.as_millis()
                    );
                }
                done => return (done, kept),
            }
        }
        let (job, own) = (Arc::clone(&self.job), Arc::clone(snapshot));
        let started = Instant::now();
        let rendered =
            tokio::task::spawn_blocking(move || (render_kept(&job, &own, None, &mut kept), kept))
                .await
                .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        if started.elapsed() < SLICE / 2 {
            self.slow.store(false, Ordering::Relaxed);
        }
        rendered
    }

    /// Takes the step for every wake-up for a revision after `rendered`, and retries a
    /// failed one (`retry`: the first sync's snapshot and when to try it again, when it
    /// failed and may succeed later), until cancelled.
    ///
    /// An async block rather than an `async fn`: the task of an idle worker is all the
    /// memory it holds, and an `async fn` keeps its arguments twice (as taken, and moved).
    #[allow(clippy::manual_async_fn, reason = "the arguments once, not twice")]
    pub fn run(
        mut self,
        mut rendered: i64,
        mut retry: Option<(Arc<Snapshot>, Instant)>,
        mut backoff: Backoff,
    ) -> impl Future<Output = ()> + Send {
        async move {
            let mut rollout = self.rollout.take();
            let keys: Vec<&str> = self.job.entry.read_keys().collect();
            let follow = Follow {
                etcd: &self.etcd,
                wake: &self.wake,
                replica: self.replica.as_deref(),
                debounce: self.debounce,
                cancel: &self.cancel,
            };
            // Boxed, as the steps below: waiting is where an idle worker spends its life.
            while let Some(next) =
                Box::pin(follow.next(&keys, rendered, retry.as_ref().map(|r| r.1))).await
            {
                let (snapshot, trigger) = match next {
                    Next::Changed(snapshot) => {
                        backoff.reset();
                        let trigger = self.wake.wanted();
                        (snapshot, trigger)
                    }
                    Next::Retry => match retry.take() {
                        Some((snapshot, _)) => (snapshot, 0),
                        None => continue,
                    },
                };
                rendered = snapshot.revision();
                // Boxed: applying (commands, file I/O) needs a large future, which an idle
                // worker would otherwise carry all the time — 500 entries, megabytes.
                // One entry's change at a time: its file is written on this thread.
                // A rolled-out change is reloaded by its rollout, at once.
                let (synced, reloads) = match &mut rollout {
                    Some(rollout) => {
                        let roll = self.roll(rollout, snapshot.clone(), trigger, &mut backoff);
                        let (synced, read) = Box::pin(roll).await;
                        rendered = read;
                        (synced, false)
                    }
                    None => {
                        let sync = self.sync(&snapshot, Syncs::InPlace, &mut backoff);
                        (Box::pin(sync).await, true)
                    }
                };
                match synced {
                    Synced::Changed => {
                        retry = None;
                        if let Some(reload) = self.reload.as_ref().filter(|_| reloads) {
                            self.status.reload_due(&self.job.entry.id);
                            reload.request();
                        }
                    }
                    Synced::Unchanged | Synced::Deferred => retry = None,
                    Synced::Failed { retry_in } => {
                        retry = retry_in.map(|delay| (snapshot, Instant::now() + delay));
                    }
                }
            }
            if let Some(rollout) = &mut rollout {
                // Boxed for the same reason: a request to etcd is a large future.
                Box::pin(rollout.leave()).await;
            }
        }
    }
}

/// An entry's part in its rollout group, and where its `reloadsignal` goes.
pub struct Rollout {
    pub(super) member: Member,
    pub(super) reloader: Reloader,
}

impl Rollout {
    /// The rollout part of `job`, when it has a `rollout` object.
    pub fn of(
        job: &Job,
        etcd: &Etcd,
        settings: &rollout::Settings,
        reloader: &Reloader,
    ) -> Option<Rollout> {
        let spec = job.entry.rollout.as_ref()?;
        Some(Rollout {
            member: Member::new(etcd.clone(), settings, spec),
            reloader: reloader.clone(),
        })
    }

    /// Gives the node's place up (the worker stops).
    pub async fn leave(&mut self) {
        self.member.leave().await;
    }
}

/// Whether a failed step may succeed from the same snapshot: what failed was the file work,
/// the check or the rollout's coordination, not the data or the template.
pub(super) fn retriable(error: &StepError) -> bool {
    matches!(error, StepError::Apply(_) | StepError::Rollout(_))
}
