//! `reconfig dispense`: every key under an etcd prefix mirrored into the files of a
//! directory, optionally for a supervised command (SPEC sections 1.3 and 8); the successor
//! of etcd-config-dispenser.
//!
//! Start-up reads the prefix at one revision and publishes it in full, so files of keys
//! deleted while dispense was down disappear; then it starts the command. From there it
//! follows etcd with the daemon's own machinery: the watch loop ([`crate::watch`]: resume
//! by revision, compaction, reconnects) and the wake → read cycle
//! ([`crate::worker::Follow`]). A snapshot newer than the published one whose files differ
//! becomes a new version of the directory (`layout`: readers see a whole transaction or
//! none of it), and the command gets `--signal` once, after the swap. Keys whose path is
//! unsafe are refused and logged (`payload`). etcd going away never ends dispense; TERM
//! or INT without a command, or the command's exit, does.
//!
//! Monitoring works as in the daemon: the mirror is one entry (named by the prefix) in the
//! [`Status`] served by `--metrics-addr`, and systemd hears ready after the first publish.

mod layout;
mod payload;

use std::collections::BTreeSet;
use std::sync::Arc;

use nix::sys::signal::Signal;
use nix::unistd::{Group, User};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::cli::DispenseArgs;
use crate::etcd::{Etcd, EtcdError};
use crate::metrics;
use crate::snapshot::Snapshot;
use crate::status::{FailureKind, Pass, Status};
use crate::supervise::{Signals, Supervisor};
use crate::systemd;
use crate::watch::{self, Replica, Watched};
use crate::worker::{Follow, Wake};
use layout::{Layout, LayoutError, Perms};
use payload::{Payload, Refused};

/// Exit code when etcd, the target or a signal handler cannot be set up.
const FAILED: u8 = 1;
/// Exit code for unusable flags.
const USAGE: u8 = 2;
/// What stops dispense when it has no command to pass signals to.
const STOP: [Signal; 2] = [Signal::SIGTERM, Signal::SIGINT];

/// Why `--owner` or `--group` cannot be used; names the flag's value.
#[derive(Debug, thiserror::Error)]
enum IdError {
    /// No such user or group, and not a number either.
    #[error("unknown {kind} {name:?}")]
    Unknown {
        /// `owner` or `group`.
        kind: &'static str,
        /// The name given.
        name: String,
    },
    /// The user or group database could not be consulted.
    #[error("cannot look up {kind} {name:?}: {source}")]
    Lookup {
        /// `owner` or `group`.
        kind: &'static str,
        /// The name given.
        name: String,
        /// The lookup's error.
        source: nix::Error,
    },
}

/// Runs `reconfig dispense` until the command exits (its status is returned) or, without
/// a command, until TERM or INT (0).
pub async fn run(args: &DispenseArgs) -> u8 {
    let prefix = normalize_prefix(&args.prefix);
    let perms = match perms(args) {
        Ok(perms) => perms,
        Err(e) => {
            error!("{e}");
            return USAGE;
        }
    };
    let mut signals = match Signals::for_command(&args.command, &STOP) {
        Ok(signals) => signals,
        Err(e) => {
            error!("{e}");
            return FAILED;
        }
    };
    let status = Arc::new(Status::new(args.monitoring.unhealthy_after));
    status.set_entries([prefix.as_str()]);
    if let Some(addr) = args.monitoring.metrics_addr {
        if let Err(e) = metrics::serve(addr, status.clone()).await {
            error!("{e}");
            return FAILED;
        }
    }
    systemd::start_watchdog();
    let cancel = CancellationToken::new();
    let start = tokio::select! {
        start = connect_and_read(args, &prefix, &cancel) => start,
        () = stop_requested(&mut signals) => {
            systemd::stopping();
            return 0;
        }
    };
    let (etcd, first) = match start {
        Ok(Some(start)) => start,
        Ok(None) => return 0,
        Err(e) => {
            error!("{e}");
            return FAILED;
        }
    };
    status.etcd_up();
    let mut mirror = Mirror::new(&prefix, Layout::new(args.target.clone(), perms));
    let update = mirror.update(&first);
    if let Err(e) = &update {
        error!("{e}");
        return FAILED;
    }
    status.record(&prefix, first.revision(), pass_of(&update, false));
    let (mut supervisor, reloader) = Supervisor::new();
    if let Err(e) = supervisor.start(&args.command) {
        error!("{e}");
        return e.exit_code();
    }
    systemd::ready();
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
    let watching = tokio::spawn(watch::run(
        etcd.clone(),
        watched,
        first.revision() + 1,
        cancel.clone(),
        status.clone(),
    ));
    let signal = args.signal;
    let updated = move |revision: i64, update: &Result<bool, LayoutError>| {
        if let (Ok(true), Some(signal)) = (update, signal) {
            reloader.send(signal);
        }
        status.record(&prefix, revision, pass_of(update, signal.is_some()));
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
    let code = loop {
        tokio::select! {
            signal = signals.recv() => match signal {
                Signal::SIGTERM | Signal::SIGINT if !supervisor.running() => break 0,
                other => supervisor.forward(other),
            },
            code = supervisor.exited() => break code,
        }
    };
    systemd::stopping();
    cancel.cancel();
    for task in [watching, mirroring] {
        if let Err(e) = task.await {
            error!("a dispense task failed: {e}");
        }
    }
    code
}

/// Connects and reads the prefix at one revision, waiting as long as etcd is unreachable;
/// None when cancelled first.
async fn connect_and_read(
    args: &DispenseArgs,
    prefix: &str,
    cancel: &CancellationToken,
) -> Result<Option<(Etcd, Snapshot)>, EtcdError> {
    let etcd = args.connect.connect_when_up().await?;
    let first = etcd.snapshot_retrying(&[prefix], cancel).await;
    Ok(first.map(|first| (etcd, first)))
}

/// Waits for TERM or INT; other signals have no child to go to yet.
async fn stop_requested(signals: &mut Signals) {
    while !STOP.contains(&signals.recv().await) {}
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
    while let Some(snapshot) = follow.next(&[&prefix], seen).await {
        seen = snapshot.revision();
        let update = mirror.update(&snapshot);
        if let Err(e) = &update {
            error!("{e}; revision {seen} not published");
        }
        on_update(seen, &update);
    }
}

/// A mirror update as the status registry counts it; `signals` when publishing signals
/// the command.
fn pass_of(update: &Result<bool, LayoutError>, signals: bool) -> Pass {
    match update {
        Ok(true) => Pass::Changed { reloaded: signals },
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

/// The files' mode, and the ids of `--owner` and `--group` (names or numbers).
fn perms(args: &DispenseArgs) -> Result<Perms, IdError> {
    let uid = args
        .owner
        .as_deref()
        .map(|name| {
            let found = User::from_name(name).map(|u| u.map(|u| u.uid.as_raw()));
            id_of("owner", name, found)
        })
        .transpose()?;
    let gid = args
        .group
        .as_deref()
        .map(|name| {
            let found = Group::from_name(name).map(|g| g.map(|g| g.gid.as_raw()));
            id_of("group", name, found)
        })
        .transpose()?;
    Ok(Perms {
        mode: args.mode,
        uid,
        gid,
    })
}

/// The id a database look-up found; a name it does not know that is a number is taken as
/// the id itself, as `chown` does.
fn id_of(kind: &'static str, name: &str, found: nix::Result<Option<u32>>) -> Result<u32, IdError> {
    match found {
        Ok(Some(id)) => Ok(id),
        Ok(None) => name.parse().map_err(|_| IdError::Unknown {
            kind,
            name: name.to_string(),
        }),
        Err(source) => Err(IdError::Lookup {
            kind,
            name: name.to_string(),
            source,
        }),
    }
}

/// The target directory and what is published in it.
struct Mirror {
    prefix: String,
    layout: Layout,
    published: Option<Published>,
    /// Keys refused at the last build, so each refusal is logged once, not at every change.
    refused: BTreeSet<String>,
}

/// The version in the target directory.
struct Published {
    /// The newest revision known to have these files.
    revision: i64,
    payload: Payload,
}

impl Mirror {
    fn new(prefix: &str, layout: Layout) -> Mirror {
        Mirror {
            prefix: prefix.to_string(),
            layout,
            published: None,
            refused: BTreeSet::new(),
        }
    }

    /// Publishes the files of `snapshot` when it is newer than what is published and its
    /// files differ (always the first time: that clears out what no key backs any more);
    /// true when a new version went live.
    fn update(&mut self, snapshot: &Snapshot) -> Result<bool, LayoutError> {
        let revision = snapshot.revision();
        if self
            .published
            .as_ref()
            .is_some_and(|p| revision <= p.revision)
        {
            return Ok(false);
        }
        let (payload, refused) = Payload::build(&self.prefix, snapshot);
        self.report(refused);
        if let Some(published) = self.published.as_mut().filter(|p| p.payload == payload) {
            published.revision = revision;
            return Ok(false);
        }
        if payload.is_empty() {
            warn!(
                "no key under {}/: the target is now empty",
                self.prefix.trim_end_matches('/')
            );
        }
        let version = self.layout.publish(&payload, revision)?;
        info!(
            "revision {revision}: published {} file(s) as {version}",
            payload.len()
        );
        self.published = Some(Published { revision, payload });
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
        Snapshot::new(
            revision,
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect(),
        )
    }

    #[test]
    fn only_newer_and_different_snapshots_are_published() {
        let tmp = tempfile::tempdir().unwrap();
        let perms = Perms {
            mode: 0o600,
            uid: None,
            gid: None,
        };
        let mut mirror = Mirror::new("/p", Layout::new(tmp.path().to_path_buf(), perms));
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

    #[test]
    fn owner_and_group_accept_names_and_numbers() {
        assert_eq!(id_of("owner", "1234", Ok(None)).unwrap(), 1234);
        assert_eq!(id_of("owner", "www", Ok(Some(33))).unwrap(), 33);
        let err = id_of("group", "nosuchgroup", Ok(None)).unwrap_err();
        assert_eq!(err.to_string(), "unknown group \"nosuchgroup\"");
    }
}
