//! One entry's step along the data path — the keys read at one revision, the template
//! rendered, the target applied — and the entries as jobs ready for it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tracing::{debug, error, info, warn};

use crate::apply::{self, apply, ApplyError, ApplyOptions, Journal, Outcome};
use crate::config::{self, ConfigError, Entry, Pattern, RenderLimits};
use crate::etcd::Snapshot;
use crate::rollout::RolloutError;
use crate::service::{retry, FailureKind, Pass};
use crate::state::{Ledger, StateDir};
use crate::template::model::{self, ModelError};
use crate::template::{Data, RenderInput, Template, TemplateError, TemplateIndex, TemplateSet};

/// An entry with its compiled template: what the pipeline works on.
pub struct Job {
    /// The validated conf.d entry.
    pub entry: Entry,
    /// Its template, compiled once (and shared by entries using the same file and pattern).
    pub template: Arc<Template>,
    /// How far one of its renders may go: the entry's own limits over the process's.
    pub limits: RenderLimits,
    /// Its record in the state directory, when there is one.
    pub ledger: Option<Arc<Ledger>>,
}

/// Why one entry's pass failed. The entry id is added where it is logged.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The data model could not be built (missing key, binary value).
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The template failed.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// Writing, checking or reloading failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// The node could not take part in its group's rollout (etcd refused a request).
    #[error(transparent)]
    Rollout(#[from] RolloutError),
}

/// Valid jobs of a config directory, and how many entries were refused (already logged).
pub struct Jobs {
    /// Entries ready to run.
    pub jobs: Vec<Job>,
    /// Entries refused, each reported on one line.
    pub refused: usize,
}

impl Jobs {
    /// With each entry's record read from `state`: read only once whatever the previous
    /// configuration had in flight is finished, so that no record is read stale.
    pub fn remembered(mut self, state: Option<&StateDir>) -> Jobs {
        if let Some(state) = state {
            for job in &mut self.jobs {
                job.ledger = Some(Arc::new(state.ledger(&job.entry)));
            }
        }
        self
    }
}

/// Why no entry can run.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The config directory is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Every entry was refused (each already logged), or there is none.
    #[error("no valid entry in {}; nothing to do", .0.display())]
    NoEntry(PathBuf),
}

/// Loads `conf.d`, compiles every template, and logs one line per refused entry; `limits`
/// hold every entry that sets none of its own. The entries' records are read apart
/// ([`Jobs::remembered`]).
/// The templates share one engine (reconfig's filters and functions registered once), and
/// entries that use the same template file with the same pattern share one compiled
/// template: 500 entries on one template cost one compilation and one copy in memory.
pub fn load_jobs(cfgdir: &Path, prefix: &str, limits: RenderLimits) -> Result<Jobs, LoadError> {
    let loaded = config::load(cfgdir, prefix)?;
    let mut refused = loaded.problems.len();
    for problem in &loaded.problems {
        error!("{problem}; entry skipped");
    }
    let mut set = TemplateSet::default();
    let mut compiled: HashMap<(PathBuf, Pattern), Result<TemplateIndex, TemplateError>> =
        HashMap::new();
    let mut usable = Vec::with_capacity(loaded.entries.len());
    for entry in loaded.entries {
        let template = compiled
            .entry((entry.template.clone(), entry.pattern.clone()))
            .or_insert_with(|| set.load(&entry.template, &entry.pattern));
        match template {
            Ok(index) => usable.push((*index, entry)),
            Err(e) => {
                refused += 1;
                error!("{}: {e}; entry skipped", entry.file.display());
            }
        }
    }
    let templates: Vec<Arc<Template>> = set.finish().into_iter().map(Arc::new).collect();
    let jobs: Vec<Job> = usable
        .into_iter()
        .map(|(index, entry)| Job {
            template: Arc::clone(&templates[index.0]),
            limits: entry.limits.over(limits),
            ledger: None,
            entry,
        })
        .collect();
    if jobs.is_empty() {
        return Err(LoadError::NoEntry(cfgdir.join("conf.d")));
    }
    Ok(Jobs { jobs, refused })
}

/// The state directory at `path`, unless previewing (`--notreally` writes nothing); one that
/// cannot be used is a warning: changes are then not remembered across restarts.
pub fn state_dir(path: &Path, notreally: bool) -> Option<StateDir> {
    if notreally {
        return None;
    }
    StateDir::open(path)
        .inspect_err(|e| {
            warn!("{e}: a reload or check due when reconfig stops is not remembered (--state-dir)")
        })
        .ok()
}

/// Renders one entry from its own snapshot (its key's and altkeys' trees, see
/// [`own_snapshot`]), stopping after `slice` if given (see [`Template::render`]).
pub fn render(
    job: &Job,
    own: &Arc<Snapshot>,
    slice: Option<Duration>,
) -> Result<String, StepError> {
    render_kept(job, own, slice, &mut None)
}

/// As [`render`], from the model `kept` of the entry's last render and keeping this one's
/// there when it is worth it ([`model::refreshed`], [`model::worth_keeping`]).
pub fn render_kept(
    job: &Job,
    own: &Arc<Snapshot>,
    slice: Option<Duration>,
    kept: &mut Option<Value>,
) -> Result<String, StepError> {
    let key = &job.entry.key;
    let (data, empty) = if job.entry.recursive && job.template.walks_trees() {
        (Data::Tree(key), model::check_tree(own, key)? == 0)
    } else {
        let model = model::refreshed(kept.take(), own, key, job.entry.recursive)?;
        let empty = model.as_object().is_some_and(|tree| tree.is_empty());
        (Data::Model(model), empty)
    };
    if empty {
        // An emptied tree is a state to show (every backend gone), but rarely the wish.
        warn!(
            entry = %job.entry.id,
            "nothing under {} in etcd: rendering with empty data",
            job.entry.key
        );
    }
    let altdata = model::altdata(own, &job.entry.altkeys)?;
    let input = RenderInput {
        data,
        altdata,
        watched: &job.entry.key,
        snapshot: own,
        prefix: job.entry.prefix.as_deref(),
        read: &job.entry.read_keys().collect::<Vec<_>>(),
    };
    let (rendered, data) = job.template.render_keeping(input, &job.limits, slice);
    *kept = model::worth_keeping(data);
    Ok(rendered?)
}

/// What one entry may see of a read shared by several entries: its own trees only, so a
/// render never depends on what else happened to be read with it.
pub fn own_snapshot(job: &Job, shared: &Snapshot) -> Arc<Snapshot> {
    Arc::new(shared.subset(job.entry.read_keys()))
}

/// The step: renders and applies one entry from its own snapshot, logging what changed; a
/// preview diff goes to stdout.
pub async fn step(
    job: &Job,
    own: &Arc<Snapshot>,
    options: &ApplyOptions,
) -> Result<Outcome, StepError> {
    let text = render(job, own, None)?;
    apply_render(job, own.revision(), text, options).await
}

/// The step after the render: applies the text rendered from `revision`, logging what
/// changed; a preview diff goes to stdout.
pub async fn apply_render(
    job: &Job,
    revision: i64,
    text: String,
    options: &ApplyOptions,
) -> Result<Outcome, StepError> {
    apply_recorded(job, revision, text, options, false).await
}

/// [`apply_render`] for a rollout turn: the change stays unconfirmed in the entry's record
/// until the turn confirms it ([`confirm_turn`]); a restart before then puts it back.
pub async fn apply_turn(
    job: &Job,
    revision: i64,
    text: String,
    options: &ApplyOptions,
) -> Result<Outcome, StepError> {
    apply_recorded(job, revision, text, options, true).await
}

/// A rollout turn ended: its change healthy and baked, or the previous content put back.
pub fn confirm_turn(job: &Job) {
    if let Some(Err(e)) = job.ledger.as_ref().map(|ledger| ledger.confirmed()) {
        warn!(entry = %job.entry.id, "{e}");
    }
}

async fn apply_recorded(
    job: &Job,
    revision: i64,
    text: String,
    options: &ApplyOptions,
    rollout: bool,
) -> Result<Outcome, StepError> {
    let journal = job
        .ledger
        .as_deref()
        .filter(|_| !options.notreally)
        .map(|ledger| Journal {
            ledger,
            revision,
            rollout,
        });
    let outcome = apply(&job.entry, text.into_bytes(), options, journal).await?;
    match &outcome {
        Outcome::Unchanged => debug!(
            entry = %job.entry.id,
            "target unchanged (revision {revision})"
        ),
        Outcome::Changed => info!(
            entry = %job.entry.id,
            "updated {} (revision {revision})",
            job.entry.target.display()
        ),
        Outcome::Adjusted { change } => info!(
            entry = %job.entry.id,
            "{}: {change} (content unchanged, no reload; revision {revision})",
            job.entry.target.display()
        ),
        Outcome::Preview { diff } => print!("{diff}"),
    }
    Ok(outcome)
}

/// Runs the entry's `reloadcmd` and records in its state what the service was reloaded
/// with.
pub async fn reload(job: &Job) -> Result<(), ApplyError> {
    let reloading = job.ledger.as_ref().map(|ledger| ledger.reloading());
    apply::reload(&job.entry).await?;
    if let (Some(ledger), Some(reloading)) = (&job.ledger, reloading) {
        if let Err(e) = ledger.reloaded(reloading) {
            warn!(entry = %job.entry.id, "{e}");
        }
    }
    Ok(())
}

/// Finishes what a killed run left of `job`'s last change: a change swapped in before its
/// post-swap check ran is checked now (and rolled back if it fails); returns whether a
/// reload is still due for a change swapped in before it.
pub async fn recover(job: &Job) -> bool {
    let Some(ledger) = &job.ledger else {
        return false;
    };
    if let Err(e) = apply::confirm(&job.entry, ledger).await {
        log_failure(&job.entry, &StepError::Apply(e), None);
    }
    let due = ledger.record().is_some_and(|r| r.reload_pending);
    if due {
        info!(
            entry = %job.entry.id,
            "a reload was still due when reconfig last stopped: reloading {}",
            job.entry.target.display()
        );
    }
    due
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

/// Logs an entry's failure on one line, saying when it is tried again (`retry_in`); a
/// missing key is a warning (reconfig.rb).
pub fn log_failure(entry: &Entry, err: &StepError, retry_in: Option<Duration>) {
    match (err, retry_in) {
        (StepError::Model(ModelError::Missing(_)), _) => {
            warn!(entry = %entry.id, "{err}; {} left untouched", entry.target.display())
        }
        (_, Some(delay)) => error!(entry = %entry.id, "{err}; {}", retry::retrying_in(delay)),
        (_, None) => error!(entry = %entry.id, "{err}"),
    }
}

/// What a step's result counts as in the process's health registry.
pub fn pass_of(result: &Result<Outcome, StepError>) -> Pass {
    let error = match result {
        Ok(Outcome::Changed | Outcome::Adjusted { .. }) => return Pass::Changed,
        Ok(Outcome::Unchanged | Outcome::Preview { .. }) => return Pass::Unchanged,
        Err(error) => error,
    };
    let kind = match error {
        StepError::Model(_) | StepError::Template(_) => FailureKind::Render,
        StepError::Rollout(_) => FailureKind::Rollout,
        StepError::Apply(apply) => match apply {
            ApplyError::Check { .. }
            | ApplyError::CheckAfterSwap { .. }
            | ApplyError::Rollback { .. }
            | ApplyError::Unhealthy { .. }
            | ApplyError::NotPutBack { .. } => FailureKind::Check,
            ApplyError::Reload { .. } => FailureKind::Reload,
            ApplyError::TargetDir { .. }
            | ApplyError::Read { .. }
            | ApplyError::UnsafeLink { .. }
            | ApplyError::NotAFile { .. }
            | ApplyError::Chown { .. }
            | ApplyError::Chmod { .. }
            | ApplyError::Id { .. }
            | ApplyError::Stage { .. }
            | ApplyError::State { .. }
            | ApplyError::Swap { .. } => FailureKind::Write,
        },
    };
    Pass::Failed {
        kind,
        message: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::apply::command::CommandError;

    #[test]
    fn results_are_classified_by_what_failed() {
        assert_eq!(pass_of(&Ok(Outcome::Changed)), Pass::Changed);
        let preview = Ok(Outcome::Preview {
            diff: "-a\n+b\n".into(),
        });
        assert_eq!(pass_of(&preview), Pass::Unchanged);

        let target = PathBuf::from("/etc/x.conf");
        let timed_out = || CommandError::TimedOut {
            command: "slow".into(),
            after: Duration::from_secs(1),
        };
        let kind = |error: StepError| match pass_of(&Err(error)) {
            Pass::Failed { kind, message } => {
                assert!(!message.is_empty());
                kind
            }
            other => panic!("{other:?}"),
        };
        let missing = ModelError::Missing("/k".into());
        assert_eq!(kind(StepError::Model(missing)), FailureKind::Render);
        let check = ApplyError::Check {
            target: target.clone(),
            source: timed_out(),
        };
        assert_eq!(kind(StepError::Apply(check)), FailureKind::Check);
        let reload = ApplyError::Reload {
            target: target.clone(),
            source: timed_out(),
        };
        assert_eq!(kind(StepError::Apply(reload)), FailureKind::Reload);
        let swap = ApplyError::Swap {
            target,
            source: std::io::Error::other("read-only file system"),
        };
        assert_eq!(kind(StepError::Apply(swap)), FailureKind::Write);
    }
}
