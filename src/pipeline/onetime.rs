//! `reconfig --onetime`: every entry's step once, from one read of all keys at one
//! revision, then exit — 0 when every entry succeeded, 1 when any failed or was invalid.
//!
//! An entry with a `rollout` object takes part in its group's rollout like the daemon: a
//! change waits for the node's turn (up to `--rollout-wait`), then swaps, reloads, checks
//! health, bakes and writes its done marker before the run goes on; a held rollout or a
//! turn that did not come leaves the target as it was and fails the entry.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::error;

use super::rollout::{Rolled, Rolling};
use super::step::{
    load_jobs, log_failure, own_snapshot, recover, reload, remove_leftovers, render, state_dir,
    step, Job, LoadError, StepError,
};
use crate::apply::{ApplyOptions, Outcome};
use crate::config::{RenderLimits, RolloutSpec};
use crate::etcd::Snapshot;
use crate::etcd::{retry_within, Connection, Etcd, EtcdError};
use crate::exit::{Exit, Fatal};
use crate::rollout::{self, Change, Member, RolloutError};

/// Why `--onetime` could not run at all (entries that fail are counted, not errors).
#[derive(Debug, thiserror::Error)]
pub enum OnetimeError {
    /// No usable configuration.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// etcd could not be reached or refused us.
    #[error(transparent)]
    Etcd(#[from] EtcdError),
}

impl Fatal for OnetimeError {
    fn exit(&self) -> Exit {
        match self {
            OnetimeError::Load(_) => Exit::Usage,
            OnetimeError::Etcd(_) => Exit::Failed,
        }
    }
}

/// What a run over the entries needs, the daemon's and `--onetime`'s alike.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// The configuration directory (`conf.d/`, `templates/`).
    pub cfgdir: PathBuf,
    /// Prepended to every entry's key.
    pub prefix: String,
    /// Preview: write nothing, run nothing.
    pub notreally: bool,
    /// The render limits of entries that set none of their own.
    pub limits: RenderLimits,
    /// Where each entry's state is kept across restarts.
    pub state_dir: PathBuf,
    /// Where etcd is.
    pub connection: Connection,
    /// Where and as whom this node takes part in rollouts.
    pub rollout: rollout::Settings,
    /// With `--onetime`: the longest wait for this node's turn in a rollout.
    pub rollout_wait: Duration,
}

/// Runs every entry once.
pub async fn onetime(settings: &RunSettings) -> Result<Exit, OnetimeError> {
    let state = state_dir(&settings.state_dir, settings.notreally);
    let loaded =
        load_jobs(&settings.cfgdir, &settings.prefix, settings.limits)?.remembered(state.as_ref());
    let options = ApplyOptions::new(settings.notreally);
    remove_leftovers(&loaded.jobs, &options);
    let etcd = Etcd::connect(&settings.connection).await?;
    let run = Run {
        etcd: &etcd,
        options: &options,
        rollout: settings.rollout.clone(),
        wait: settings.rollout_wait,
    };
    let failed = run.sync_all(&loaded.jobs).await?;
    Ok(if failed == 0 && loaded.refused == 0 {
        Exit::Ok
    } else {
        Exit::Failed
    })
}

/// What every entry's pass shares.
struct Run<'a> {
    etcd: &'a Etcd,
    options: &'a ApplyOptions,
    /// Where and as whom entries with a `rollout` object take part.
    rollout: rollout::Settings,
    /// `--rollout-wait`.
    wait: Duration,
}

impl Run<'_> {
    /// What a killed run left unfinished, the step, then the reload when the target changed
    /// (or one was still due): with one pass there is nothing to pace.
    async fn once(&self, job: &Job, own: &Arc<Snapshot>) -> Result<Outcome, StepError> {
        let due = recover(job).await;
        let stepped = match &job.entry.rollout {
            Some(spec) if !self.options.notreally => self.rolled(job, spec, own).await,
            _ => step(job, own, self.options).await,
        };
        if due || matches!(stepped, Ok(Outcome::Changed)) {
            reload(job).await?;
        }
        stepped
    }

    /// The step as this node's part in its group's rollout; a change rolled out (reloaded
    /// already) counts as unchanged for the reload.
    async fn rolled(
        &self,
        job: &Job,
        spec: &RolloutSpec,
        own: &Arc<Snapshot>,
    ) -> Result<Outcome, StepError> {
        let mut member = Member::new(self.etcd.clone(), &self.rollout, spec);
        let cancel = CancellationToken::new();
        let rolling = Rolling {
            job,
            options: self.options,
            cancel: &cancel,
            reloaded: &|_| {},
            waiting: &|_| {},
        };
        let deadline = tokio::time::Instant::now() + self.wait;
        let mut own = own.clone();
        loop {
            let text = render(job, &own, None)?;
            let change = Change {
                trigger: 0,
                read_at: own.revision(),
            };
            let timer = tokio::time::sleep_until(deadline);
            match rolling.roll(&mut member, change, text, timer).await {
                Rolled::Unchanged(outcome) => return Ok(outcome),
                Rolled::Done => return Ok(Outcome::Unchanged),
                Rolled::Refresh(_) => match self.etcd.snapshot(job.entry.read_keys()).await {
                    Ok(read) => own = Arc::new(read),
                    Err(source) => {
                        member.leave().await;
                        let group = spec.group.clone();
                        return Err(RolloutError::Etcd { group, source }.into());
                    }
                },
                Rolled::Held {
                    revision,
                    node,
                    reason,
                } => {
                    let group = spec.group.clone();
                    let held = RolloutError::Held {
                        group,
                        revision,
                        node,
                        reason,
                    };
                    return Err(held.into());
                }
                Rolled::Failed { error, .. } => return Err(error),
                Rolled::Superseded | Rolled::Stopped => {
                    member.leave().await;
                    let group = spec.group.clone();
                    let waited = self.wait;
                    return Err(RolloutError::NoTurn { group, waited }.into());
                }
            }
        }
    }

    /// Reads every entry's keys at one revision and syncs each entry; returns the failures.
    /// When etcd's RBAC refuses some key, each entry reads on its own instead, so the
    /// entries the user may read still sync and the others fail naming their key.
    async fn sync_all(&self, jobs: &[Job]) -> Result<usize, EtcdError> {
        let etcd = self.etcd;
        let keys: Vec<&str> = jobs.iter().flat_map(|j| j.entry.read_keys()).collect();
        let read = || etcd.snapshot(keys.iter().copied());
        let quick = etcd.endpoint_count();
        let shared = match retry_within(etcd.timeout(), quick, EtcdError::is_transient, read).await
        {
            Err(EtcdError::PermissionDenied { .. }) => return self.sync_each(jobs).await,
            other => Arc::new(other?),
        };
        let mut failed = 0;
        for job in jobs {
            let own = match jobs {
                // The read holds exactly this entry's trees: no copy needed.
                [_] => Arc::clone(&shared),
                _ => own_snapshot(job, &shared),
            };
            if let Err(e) = self.once(job, &own).await {
                failed += 1;
                log_failure(&job.entry, &e, None);
            }
        }
        Ok(failed)
    }

    /// [`Self::sync_all`] with one read per entry; an entry whose keys etcd refuses fails
    /// alone.
    async fn sync_each(&self, jobs: &[Job]) -> Result<usize, EtcdError> {
        let mut failed = 0;
        for job in jobs {
            let synced = match self.etcd.snapshot(job.entry.read_keys()).await {
                Ok(snapshot) => self
                    .once(job, &Arc::new(snapshot))
                    .await
                    .map_err(|e| log_failure(&job.entry, &e, None)),
                Err(e @ EtcdError::PermissionDenied { .. }) => {
                    error!(entry = %job.entry.id, "{e}");
                    Err(())
                }
                Err(e) => return Err(e),
            };
            failed += usize::from(synced.is_err());
        }
        Ok(failed)
    }
}
