//! Daemon mode, the end of the data path: every entry's step once, then every change in
//! etcd followed into the targets until told to stop. This module owns the process's life:
//! signals, configuration reloads and shutdown.
//!
//! The running configuration is a [`Generation`]: the entries' workers and the watch over
//! their keys, and the entries' reload tasks (reloads follow files, paced by the reload
//! interval). SIGHUP, or a template file changing on disk, loads `conf.d` and the
//! templates afresh and swaps generations. SIGTERM/SIGINT stop the generation (writes in
//! flight finish) and exit 0. SIGUSR1 toggles debug logging.
//!
//! With `-- CMD ARGS`, the daemon supervises that command: it starts it once the first
//! generation has synced every entry, sends an entry's `reloadsignal` after that entry's
//! target changed, passes TERM, INT, QUIT, USR2 and WINCH on to it (HUP and USR1 keep
//! their meaning for the daemon), and when it exits, stops the generation and exits with
//! its status. Under systemd the daemon reports ready once the first generation has synced
//! every entry, and stopping on the way out.

mod generation;
mod reload;
mod rolling;
mod templates;
mod worker;

use std::ffi::OsString;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::sync::{mpsc, Notify};
use tracing::{error, info};

use crate::apply::ApplyOptions;
use crate::etcd::{Etcd, EtcdError};
use crate::exit::{Exit, Fatal};
use crate::pipeline::{load_jobs, state_dir, LoadError, RunSettings};
use crate::service::retry::Pacing;
use crate::service::{
    memory, systemd, Monitoring, Service, StartError, SuperviseError, Supervisor,
};
use generation::{Generation, Shared};
use templates::watch_templates;

/// Editors and Chef write a template in several steps; wait this long for quiet.
const TEMPLATE_SETTLE: Duration = Duration::from_millis(100);

/// The daemon's own signals, handled when no child is supervised.
const OWN_SIGNALS: [Signal; 4] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGUSR1,
];

/// Why the daemon could not run (or its child could not be started).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// No usable configuration at start.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// Signals or monitoring could not be set up.
    #[error(transparent)]
    Start(#[from] StartError),
    /// etcd refused us (waiting cannot help: credentials, certificates, records).
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    /// The command to supervise could not be started.
    #[error(transparent)]
    Child(#[from] SuperviseError),
}

impl Fatal for DaemonError {
    fn exit(&self) -> Exit {
        match self {
            DaemonError::Load(_) => Exit::Usage,
            DaemonError::Start(_) | DaemonError::Etcd(_) => Exit::Failed,
            DaemonError::Child(e) => Exit::Child(e.exit_code()),
        }
    }
}

/// What the daemon runs, from the command line (`cli` builds it).
#[derive(Debug, Clone)]
pub struct DaemonSettings {
    /// The entries, etcd, the state, the limits.
    pub run: RunSettings,
    /// Quiet time after a change before rendering, for entries without their own.
    pub debounce: Option<Duration>,
    /// Least time between two reloads of an entry, for entries without their own.
    pub reload_interval: Duration,
    /// How failed changes and reloads are retried.
    pub retry: Pacing,
    /// `/metrics` and `/healthz`.
    pub monitoring: Monitoring,
    /// The command to supervise (none: none).
    pub command: Vec<OsString>,
}

/// Runs the daemon until SIGTERM/SIGINT or `shutdown`, or until the supervised command
/// exits; SIGUSR1 calls `toggle_debug`, which says whether debug logging is now on.
pub async fn run(
    settings: &DaemonSettings,
    mut toggle_debug: impl FnMut() -> bool,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Exit, DaemonError> {
    let args = &settings.run;
    let state = state_dir(&args.state_dir, args.notreally);
    let jobs = load_jobs(&args.cfgdir, &args.prefix, args.limits)?
        .remembered(state.as_ref())
        .jobs;
    let mut service = Service::start(
        &settings.command,
        &OWN_SIGNALS,
        settings.monitoring,
        Box::pin(shutdown),
    )
    .await?;
    let Some(connected) = service
        .unless_stopped(Etcd::connect_when_up(&args.connection))
        .await
    else {
        info!("stopping before etcd was reached");
        return Ok(Exit::Ok);
    };
    let etcd = connected?;
    service.status.etcd_up();
    let (template_tx, mut template_rx) = mpsc::unbounded_channel();
    let _template_watch = watch_templates(&args.cfgdir.join("templates"), template_tx);

    let (mut supervisor, reloader) = Supervisor::new();
    let shared = Shared {
        etcd,
        options: ApplyOptions::new(args.notreally),
        debounce: settings.debounce,
        reload_interval: settings.reload_interval,
        reloader,
        synced: Arc::new(Notify::new()),
        status: service.status.clone(),
        state,
        retry: settings.retry,
        rollout: settings.run.rollout.clone(),
    };
    let mut generation = Generation::start(&shared, jobs);
    let mut ready = false;
    let ended = loop {
        tokio::select! {
            signal = service.signal() => match signal {
                Signal::SIGUSR1 => {
                    let on = toggle_debug();
                    info!("debug logging {}", if on { "on" } else { "off" });
                }
                Signal::SIGHUP => {
                    info!("SIGHUP: reloading {}", args.cfgdir.display());
                    generation = reload(&shared, args, generation).await;
                }
                Signal::SIGTERM | Signal::SIGINT if !supervisor.running() => break Ok(Exit::Ok),
                other => supervisor.forward(other),
            },
            () = shared.synced.notified(), if !ready => {
                ready = true;
                if let Err(e) = supervisor.start(&settings.command) {
                    break Err(e.into());
                }
                systemd::ready();
                memory::release_unused();
            }
            code = supervisor.exited() => break Ok(Exit::Child(code)),
            Some(()) = template_rx.recv() => {
                tokio::time::sleep(TEMPLATE_SETTLE).await;
                while template_rx.try_recv().is_ok() {}
                info!("a template changed on disk: reloading");
                generation = reload(&shared, args, generation).await;
            }
        }
    };
    info!("stopping: finishing writes in flight");
    systemd::stopping();
    generation.stop().await;
    ended
}

/// Loads the configuration afresh and swaps generations; keeps the old one if the new
/// configuration has no valid entry.
async fn reload(shared: &Shared, args: &RunSettings, current: Generation) -> Generation {
    match load_jobs(&args.cfgdir, &args.prefix, args.limits) {
        Ok(loaded) => {
            // The records after the old generation's last writes and reloads.
            current.stop().await;
            Generation::start(shared, loaded.remembered(shared.state.as_ref()).jobs)
        }
        Err(e) => {
            error!("reload: {e}; keeping the running configuration");
            current
        }
    }
}
