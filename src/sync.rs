//! One pass over the entries — read at one revision, render, apply — used at daemon
//! start-up and by `--onetime`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::{debug, error, info, warn};

use crate::apply::{self, apply, ApplyError, ApplyOptions, Outcome};
use crate::backoff::retry_within;
use crate::cli::RunArgs;
use crate::config::{self, ConfigError, Entry};
use crate::etcd::{Etcd, EtcdError};
use crate::snapshot::{ModelError, Snapshot};
use crate::template::{Pattern, RenderInput, Template, TemplateError};

/// How a run ends, as the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every entry succeeded.
    Ok = 0,
    /// An entry was invalid or failed, or etcd could not be reached.
    Failed = 1,
    /// The command line or the config directory is unusable.
    Usage = 2,
}

/// An entry with its compiled template: what the pipeline works on.
pub struct Job {
    /// The validated conf.d entry.
    pub entry: Entry,
    /// Its template, compiled once (and shared by entries using the same file and pattern).
    pub template: Arc<Template>,
}

/// Why one entry's pass failed. The entry id is added where it is logged.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The data model could not be built (missing key, binary value).
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The template failed.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// Writing, checking or reloading failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

/// Valid jobs of a config directory, and how many entries were refused (already logged).
pub struct Jobs {
    /// Entries ready to run.
    pub jobs: Vec<Job>,
    /// Entries refused, each reported on one line.
    pub refused: usize,
}

/// Loads `conf.d`, compiles every template, and logs one line per refused entry.
/// Entries that use the same template file with the same pattern share one compiled
/// template: 500 entries on one template cost one compilation and one copy in memory.
pub fn load_jobs(cfgdir: &Path, prefix: &str) -> Result<Jobs, ConfigError> {
    let loaded = config::load(cfgdir, prefix)?;
    let mut refused = loaded.problems.len();
    for problem in &loaded.problems {
        error!("{problem}; entry skipped");
    }
    let mut compiled: HashMap<(PathBuf, Pattern), Result<Arc<Template>, String>> = HashMap::new();
    let mut jobs = Vec::with_capacity(loaded.entries.len());
    for entry in loaded.entries {
        let template = compiled
            .entry((entry.template.clone(), entry.pattern.clone()))
            .or_insert_with(|| {
                Template::load(&entry.template, &entry.pattern)
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            });
        match template {
            Ok(template) => jobs.push(Job {
                template: template.clone(),
                entry,
            }),
            Err(e) => {
                refused += 1;
                error!("{}: {e}; entry skipped", entry.file.display());
            }
        }
    }
    Ok(Jobs { jobs, refused })
}

/// Renders one entry from its own snapshot (its key's and altkeys' trees, see
/// [`own_snapshot`]).
pub fn render(job: &Job, own: &Arc<Snapshot>) -> Result<String, SyncError> {
    let data = own.data_for(&job.entry.key, job.entry.recursive)?;
    if data.as_object().is_some_and(|tree| tree.is_empty()) {
        // An emptied tree is a state to show (every backend gone), but rarely the wish.
        warn!(
            entry = %job.entry.id,
            "nothing under {} in etcd: rendering with empty data",
            job.entry.key
        );
    }
    let altdata = own.altdata_for(&job.entry.altkeys)?;
    let input = RenderInput {
        data: &data,
        altdata: &altdata,
        watched: &job.entry.key,
        snapshot: own,
    };
    Ok(job.template.render(&input)?)
}

/// What one entry may see of a read shared by several entries: its own trees only, so a
/// render never depends on what else happened to be read with it.
pub fn own_snapshot(job: &Job, shared: &Snapshot) -> Arc<Snapshot> {
    Arc::new(shared.subset(job.entry.read_keys()))
}

/// Renders and applies one entry from its own snapshot; a preview diff goes to stdout.
pub async fn sync_entry(
    job: &Job,
    own: &Arc<Snapshot>,
    options: &ApplyOptions,
) -> Result<Outcome, SyncError> {
    let text = render(job, own)?;
    let outcome = apply(&job.entry, text.as_bytes(), options).await?;
    match &outcome {
        Outcome::Unchanged => debug!(
            entry = %job.entry.id,
            "target unchanged (revision {})",
            own.revision()
        ),
        Outcome::Changed => info!(
            entry = %job.entry.id,
            "updated {} (revision {})",
            job.entry.target.display(),
            own.revision()
        ),
        Outcome::Adjusted { change } => info!(
            entry = %job.entry.id,
            "{}: {change} (content unchanged, no reload; revision {})",
            job.entry.target.display(),
            own.revision()
        ),
        Outcome::Preview { diff } => print!("{diff}"),
    }
    Ok(outcome)
}

/// Removes the staged files a killed run left beside the targets of `jobs`, each logged;
/// `--notreally` touches nothing.
pub fn remove_leftovers(jobs: &[Job], options: &ApplyOptions) {
    if options.notreally {
        return;
    }
    for job in jobs {
        apply::remove_leftovers(&job.entry);
    }
}

/// Logs an entry's failure on one line; a missing key is a warning (reconfig.rb).
pub fn log_failure(entry: &Entry, err: &SyncError) {
    match err {
        SyncError::Model(ModelError::Missing(_)) => {
            warn!(entry = %entry.id, "{err}; {} left untouched", entry.target.display())
        }
        _ => error!(entry = %entry.id, "{err}"),
    }
}

/// Reads every entry's keys at one revision and syncs each entry; returns the failures.
/// When etcd's RBAC refuses some key, each entry reads on its own instead, so the
/// entries the user may read still sync and the others fail naming their key.
pub async fn sync_all(
    etcd: &Etcd,
    jobs: &[Job],
    options: &ApplyOptions,
) -> Result<usize, EtcdError> {
    let keys: Vec<&str> = jobs.iter().flat_map(|j| j.entry.read_keys()).collect();
    let read = || etcd.snapshot(keys.iter().copied());
    let shared = match retry_within(etcd.timeout(), EtcdError::is_transient, read).await {
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
        if let Err(e) = sync_entry(job, &own, options).await {
            failed += 1;
            log_failure(&job.entry, &e);
        }
    }
    Ok(failed)
}

/// [`sync_all`] with one read per entry; an entry whose keys etcd refuses fails alone.
async fn sync_each(etcd: &Etcd, jobs: &[Job], options: &ApplyOptions) -> Result<usize, EtcdError> {
    let mut failed = 0;
    for job in jobs {
        let synced = match etcd.snapshot(job.entry.read_keys()).await {
            Ok(snapshot) => sync_entry(job, &Arc::new(snapshot), options)
                .await
                .map_err(|e| log_failure(&job.entry, &e)),
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

/// Whether diffs on stdout get colour: a terminal, and `NO_COLOR` unset.
pub fn diff_color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// `reconfig --onetime`: one pass over every entry, then exit.
pub async fn onetime(args: &RunArgs) -> Exit {
    let loaded = match load_jobs(&args.config.cfgdir, &args.config.prefix) {
        Ok(loaded) => loaded,
        Err(e) => {
            error!("{e}");
            return Exit::Usage;
        }
    };
    if loaded.jobs.is_empty() {
        error!(
            "no valid entry in {}; nothing to do",
            args.config.cfgdir.join("conf.d").display()
        );
        return Exit::Usage;
    }
    let options = ApplyOptions {
        notreally: args.notreally,
        color: diff_color(),
    };
    remove_leftovers(&loaded.jobs, &options);
    let result = match args.connect.connect().await {
        Ok(etcd) => sync_all(&etcd, &loaded.jobs, &options).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(0) if loaded.refused == 0 => Exit::Ok,
        Ok(_) => Exit::Failed,
        Err(e) => {
            error!("{e}");
            Exit::Failed
        }
    }
}
