//! `reconfig --onetime`: every entry's step once, from one read of all keys at one
//! revision, then exit — 0 when every entry succeeded, 1 when any failed or was invalid.

use std::sync::Arc;

use tracing::error;

use super::step::{
    load_jobs, log_failure, own_snapshot, recover, reload, remove_leftovers, state_dir, step, Job,
    LoadError, StepError,
};
use crate::apply::{ApplyOptions, Outcome};
use crate::cli::{Exit, Fatal, RunArgs};
use crate::etcd::Snapshot;
use crate::etcd::{retry_within, Etcd, EtcdError};

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

/// Runs every entry once.
pub async fn onetime(args: &RunArgs) -> Result<Exit, OnetimeError> {
    let state = state_dir(&args.state.state_dir, args.notreally);
    let loaded = load_jobs(
        &args.config.cfgdir,
        &args.config.prefix,
        args.limits.limits(),
        state.as_ref(),
    )?;
    let options = ApplyOptions::new(args.notreally);
    remove_leftovers(&loaded.jobs, &options);
    let etcd = Etcd::connect(&args.connect).await?;
    let failed = sync_all(&etcd, &loaded.jobs, &options).await?;
    Ok(if failed == 0 && loaded.refused == 0 {
        Exit::Ok
    } else {
        Exit::Failed
    })
}

/// What a killed run left unfinished, the step, then the reload when the target changed (or
/// one was still due): with one pass there is nothing to pace.
async fn once(
    job: &Job,
    own: &Arc<Snapshot>,
    options: &ApplyOptions,
) -> Result<Outcome, StepError> {
    let due = recover(job).await;
    let stepped = step(job, own, options).await;
    if due || matches!(stepped, Ok(Outcome::Changed)) {
        reload(job).await?;
    }
    stepped
}

/// Reads every entry's keys at one revision and syncs each entry; returns the failures.
/// When etcd's RBAC refuses some key, each entry reads on its own instead, so the
/// entries the user may read still sync and the others fail naming their key.
async fn sync_all(etcd: &Etcd, jobs: &[Job], options: &ApplyOptions) -> Result<usize, EtcdError> {
    let keys: Vec<&str> = jobs.iter().flat_map(|j| j.entry.read_keys()).collect();
    let read = || etcd.snapshot(keys.iter().copied());
    let quick = etcd.endpoint_count();
    let shared = match retry_within(etcd.timeout(), quick, EtcdError::is_transient, read).await {
        Err(EtcdError::PermissionDenied { .. }) => return sync_each(etcd, jobs, options).await,
        other => Arc::new(other?),
    };
    let mut failed = 0;
    for job in jobs {
        let own = match jobs {
            // The read holds exactly this entry's trees: no copy needed.
            [_] => Arc::clone(&shared),
            _ => own_snapshot(job, &shared),
        };
        if let Err(e) = once(job, &own, options).await {
            failed += 1;
            log_failure(&job.entry, &e, None);
        }
    }
    Ok(failed)
}

/// [`sync_all`] with one read per entry; an entry whose keys etcd refuses fails alone.
async fn sync_each(etcd: &Etcd, jobs: &[Job], options: &ApplyOptions) -> Result<usize, EtcdError> {
    let mut failed = 0;
    for job in jobs {
        let synced = match etcd.snapshot(job.entry.read_keys()).await {
            Ok(snapshot) => once(job, &Arc::new(snapshot), options)
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
