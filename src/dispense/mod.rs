//! `reconfig dispense`, beside the data path: every key under an etcd prefix mirrored into
//! the files of a directory, optionally for a supervised command; the successor of
//! etcd-config-dispenser.
//!
//! Start-up reads the prefix at one revision and publishes it in full, so files of keys
//! deleted while dispense was down disappear; then it starts the command. From there it
//! follows etcd with the daemon's own machinery: the watch (resume by revision, compaction,
//! reconnects) and the wake → read cycle ([`Follow`]). A snapshot newer than the published
//! one whose files differ becomes a new version of the directory (`layout`: readers see a
//! whole transaction or none of it), and the command gets `--signal` once, after the swap.
//! Keys whose path is unsafe are refused and logged (`payload`). etcd going away never ends
//! dispense; TERM or INT without a command, or the command's exit, does.
//!
//! Monitoring works as in the daemon: the mirror is one entry (named by the prefix) in the
//! health registry served by `--metrics-addr`, and systemd hears ready after the first
//! publish.

mod layout;
mod payload;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use fsx::{group_id, user_id, IdError, Perms};
use nix::sys::signal::Signal;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::etcd::watch::{subscriptions, Follow, Next, Replica, Wake, Watched};
use crate::etcd::{Backoff, Connection, Etcd, EtcdError, Snapshot};
use crate::exit::{Exit, Fatal};
use crate::service::{
    memory, retry, retry::Pacing, systemd, FailureKind, Monitoring, Pass, Service, StartError,
    SuperviseError, Supervisor,
};
use layout::{Layout, LayoutError};
use payload::{Payload, Refused};

/// What stops dispense when it has no command to pass signals to.
const STOP: [Signal; 2] = [Signal::SIGTERM, Signal::SIGINT];

/// Why dispense could not run (or its command could not be started).
#[derive(Debug, thiserror::Error)]
pub enum DispenseError {
    /// `--owner` or `--group` names nobody.
    #[error(transparent)]
    Id(#[from] IdError),
    /// Signals or monitoring could not be set up.
    #[error(transparent)]
    Start(#[from] StartError),
    /// etcd refused us (waiting cannot help: credentials, certificates, records).
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    /// The first version could not be published.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// The command to supervise could not be started.
    #[error(transparent)]
    Child(#[from] SuperviseError),
}

impl Fatal for DispenseError {
    fn exit(&self) -> Exit {
        match self {
            DispenseError::Id(_) => Exit::Usage,
            DispenseError::Start(_) | DispenseError::Etcd(_) | DispenseError::Layout(_) => {
                Exit::Failed
            }
            DispenseError::Child(e) => Exit::Child(e.exit_code()),
        }
    }
}

/// What `reconfig dispense` mirrors where, from the command line (`cli` builds it).
#[derive(Debug, Clone)]
pub struct DispenseSettings {
    /// The etcd prefix mirrored.
    pub prefix: String,
    /// The directory the files go to.
    pub target: PathBuf,
    /// Sent to the command once per published transaction.
    pub signal: Option<Signal>,
    /// Mode of the files.
    pub mode: u32,
    /// Owner of the files (name or id).
    pub owner: Option<String>,
    /// Group of the files (name or id).
    pub group: Option<String>,
    /// How a publish that failed is retried.
    pub retry: Pacing,
    /// `/metrics` and `/healthz`.
    pub monitoring: Monitoring,
    /// Where etcd is.
    pub connection: Connection,
    /// The command to supervise (none: none).
    pub command: Vec<OsString>,
}

/// Runs `reconfig dispense` until the command exits (its status is returned) or, without
/// a command, until TERM, INT or `shutdown`.
pub async fn run(
    args: &DispenseSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Exit, DispenseError> {
    let prefix = normalize_prefix(&args.prefix);
    let perms = Perms {
        mode: args.mode,
        uid: args.owner.as_deref().map(user_id).transpose()?,
        gid: args.group.as_deref().map(group_id).transpose()?,
    };
    let mut service =
        Service::start(&args.command, &STOP, args.monitoring, Box::pin(shutdown)).await?;
    let status = service.status.clone();
    status.set_entries([prefix.as_str()]);
    let start = async {
        let etcd = Etcd::connect_when_up(&args.connection).await?;
        let first = Arc::new(etcd.snapshot_retrying(&[prefix.as_str()]).await);
        Ok::<_, EtcdError>((etcd, first))
    };
    let Some(started) = service.unless_stopped(start).await else {
        return Ok(Exit::Ok);
    };
    let (etcd, first) = started?;
    status.etcd_up();
    let layout = Layout::new(args.target.clone(), perms);
    let mut mirror = Mirror::new(&prefix, layout, args.retry);
    let (published, update) = publish(mirror, first.clone()).await;
    mirror = published;
    status.record(&prefix, first.revision(), pass_of(&update));
    update?;
    let (mut supervisor, reloader) = Supervisor::new();
    supervisor.start(&args.command)?;
    systemd::ready();
    memory::release_unused();
    let wake = Arc::new(Wake::default());
    let replica = Arc::new(Replica::new(first.subset([prefix.as_str()])));
    let watched = vec![Watched {
        key: prefix.clone(),
        subscribers: vec![wake.clone()],
        replica: replica.clone(),
    }];
    info!(
        "mirroring {prefix} into {} from revision {}",
        args.target.display(),
        first.revision() + 1
    );
    let cancel = CancellationToken::new();
    let health = {
        let status = status.clone();
        move |up| status.watch_state(up)
    };
    let watching = tokio::spawn(subscriptions(
        etcd.clone(),
        watched,
        first.revision() + 1,
        cancel.clone(),
        health,
    ));
    let signal = args.signal;
    let updated = move |revision: i64, update: &Result<bool, LayoutError>| {
        status.record(&prefix, revision, pass_of(update));
        if let (Ok(true), Some(signal)) = (update, signal) {
            reloader.send(signal);
            status.record_reload(&prefix, Ok(()));
        }
    };
    let mirroring = tokio::spawn(follow(
        etcd,
        wake,
        replica,
        mirror,
        first.revision(),
        cancel.clone(),
        updated,
    ));
    let exit = loop {
        tokio::select! {
            signal = service.signal() => match signal {
                Signal::SIGTERM | Signal::SIGINT if !supervisor.running() => break Exit::Ok,
                other => supervisor.forward(other),
            },
            code = supervisor.exited() => break Exit::Child(code),
        }
    };
    systemd::stopping();
    cancel.cancel();
    for task in [watching, mirroring] {
        if let Err(e) = task.await {
            error!("a dispense task failed: {e}");
        }
    }
    Ok(exit)
}

/// Publishes `snapshot` off the runtime's threads (writing and syncing files blocks), giving
/// the mirror back with the outcome.
async fn publish(
    mut mirror: Mirror,
    snapshot: Arc<Snapshot>,
) -> (Mirror, Result<bool, LayoutError>) {
    let published = tokio::task::spawn_blocking(move || {
        let update = mirror.update(&snapshot);
        (mirror, update)
    });
    published
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// Publishes every snapshot of the prefix newer than revision `seen` and calls
/// `on_update` with each snapshot's revision and whether a new version went live, until
/// cancelled (never in the middle of a publish).
async fn follow(
    etcd: Etcd,
    wake: Arc<Wake>,
    replica: Arc<Replica>,
    mut mirror: Mirror,
    mut seen: i64,
    cancel: CancellationToken,
    on_update: impl Fn(i64, &Result<bool, LayoutError>),
) {
    let follow = Follow {
        etcd: &etcd,
        wake: &wake,
        replica: Some(&replica),
        debounce: None,
        cancel: &cancel,
    };
    let prefix = mirror.prefix.clone();
    let mut retry: Option<(Arc<Snapshot>, Instant)> = None;
    while let Some(next) = follow
        .next(&[&prefix], seen, retry.as_ref().map(|r| r.1))
        .await
    {
        let snapshot = match next {
            Next::Changed(snapshot) => {
                mirror.retry.reset();
                snapshot
            }
            Next::Retry => match retry.take() {
                Some((snapshot, _)) => snapshot,
                None => continue,
            },
        };
        seen = snapshot.revision();
        let (published, update) = publish(mirror, Arc::clone(&snapshot)).await;
        mirror = published;
        retry = None;
        if let Err(e) = &update {
            let delay = mirror.retry.next_delay();
            error!(
                "{e}; revision {seen} not published; {}",
                retry::retrying_in(delay)
            );
            retry = Some((snapshot, Instant::now() + delay));
        }
        on_update(seen, &update);
    }
}

/// A mirror update as the status registry counts it.
fn pass_of(update: &Result<bool, LayoutError>) -> Pass {
    match update {
        Ok(true) => Pass::Changed,
        Ok(false) => Pass::Unchanged,
        Err(e) => Pass::Failed {
            kind: FailureKind::Write,
            message: e.to_string(),
        },
    }
}

/// `/certs/` → `/certs`; an empty prefix is the root.
fn normalize_prefix(prefix: &str) -> String {
    match prefix.trim_end_matches('/') {
        "" => "/".to_string(),
        trimmed => trimmed.to_string(),
    }
}

/// The target directory and what is published in it.
struct Mirror {
    prefix: String,
    /// The directory, which knows the files it published.
    layout: Layout,
    /// The newest revision known to have the published files; none before the first publish.
    revision: Option<i64>,
    /// Keys refused at the last build, so each refusal is logged once, not at every change.
    refused: BTreeSet<String>,
    /// Paces the retries of a publish that failed.
    retry: Backoff,
}

impl Mirror {
    fn new(prefix: &str, layout: Layout, retry: Pacing) -> Mirror {
        Mirror {
            prefix: prefix.to_string(),
            layout,
            revision: None,
            refused: BTreeSet::new(),
            retry: retry.backoff(),
        }
    }

    /// Publishes the files of `snapshot` when it is newer than what is published and its
    /// files differ (always the first time: that clears out what no key backs any more);
    /// true when a new version went live.
    fn update(&mut self, snapshot: &Snapshot) -> Result<bool, LayoutError> {
        let revision = snapshot.revision();
        if self.revision.is_some_and(|seen| revision <= seen) {
            return Ok(false);
        }
        let (payload, refused) = Payload::build(&self.prefix, snapshot);
        self.report(refused);
        if self.layout.published() == Some(&payload) {
            self.revision = Some(revision);
            return Ok(false);
        }
        if payload.is_empty() {
            warn!(
                "no key under {}/: the target is now empty",
                self.prefix.trim_end_matches('/')
            );
        }
        let files = payload.len();
        let version = self.layout.publish(payload, revision)?;
        info!(
            "revision {revision}: published {files} file(s) as {} ({} unchanged, not rewritten)",
            version.name, version.reused
        );
        self.revision = Some(revision);
        Ok(true)
    }

    /// Logs the refusals that were not already logged at the previous build.
    fn report(&mut self, refused: Vec<Refused>) {
        for refusal in refused.iter().filter(|r| !self.refused.contains(&r.key)) {
            warn!("{refusal}");
        }
        self.refused = refused.into_iter().map(|r| r.key).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(revision: i64, pairs: &[(&str, &str)]) -> Snapshot {
        Snapshot::of(revision, pairs)
    }

    #[test]
    fn only_newer_and_different_snapshots_are_published() {
        let tmp = tempfile::tempdir().unwrap();
        let perms = Perms {
            mode: 0o600,
            uid: None,
            gid: None,
        };
        let layout = Layout::new(tmp.path().to_path_buf(), perms);
        let mut mirror = Mirror::new("/p", layout, Pacing::default());
        let data = |name: &str| std::fs::read_to_string(tmp.path().join(name)).ok();

        assert!(mirror.update(&snapshot(5, &[("/p/a", "1")])).unwrap());
        assert_eq!(data("a").as_deref(), Some("1"));
        assert!(!mirror.update(&snapshot(5, &[("/p/a", "1")])).unwrap());
        // A change elsewhere (a sibling of the prefix) moves the revision, not the files.
        assert!(!mirror
            .update(&snapshot(6, &[("/p/a", "1"), ("/p-x", "2")]))
            .unwrap());
        assert!(!mirror.update(&snapshot(6, &[("/p/a", "late")])).unwrap());
        assert_eq!(data("a").as_deref(), Some("1"));
        assert!(mirror.update(&snapshot(7, &[("/p/b", "2")])).unwrap());
        assert_eq!((data("a"), data("b").as_deref()), (None, Some("2")));
    }

    #[test]
    fn prefix_is_a_directory_whatever_its_spelling() {
        assert_eq!(normalize_prefix("/certs/"), "/certs");
        assert_eq!(normalize_prefix("/certs"), "/certs");
        assert_eq!(normalize_prefix("/"), "/");
        assert_eq!(normalize_prefix(""), "/");
    }
}
