//! Daemon mode: render every entry once, then keep them in step with etcd until told to
//! stop. This module owns the process's life: signals, reloads and shutdown.
//!
//! The running configuration is a `Generation`: the workers of the current entries plus
//! the watch loop. SIGHUP, or a template file changing on disk, loads `conf.d` and the
//! templates afresh and swaps generations: the old one finishes any write in flight, the new
//! one starts with a full sync at the current revision, so nothing that happened during the
//! swap is missed. SIGTERM/SIGINT stop the generation the same way and exit 0. SIGUSR1
//! toggles debug logging.
//!
//! With `-- CMD ARGS`, the daemon supervises that command ([`crate::supervise`]): it starts
//! it once the first generation has synced every entry, sends an entry's `reloadsignal`
//! after that entry's target changed, passes TERM, INT, QUIT, USR2 and WINCH on to it (HUP
//! and USR1 keep their meaning for the daemon), and when it exits, stops the generation
//! and exits with its status.
//!
//! Monitoring: every generation records its entries and their renders in the process's
//! [`Status`], served by `--metrics-addr` ([`crate::metrics`]); under systemd the daemon
//! reports ready once the first generation has synced every entry, stopping on the way out,
//! and pings the watchdog ([`crate::systemd`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use nix::sys::signal::Signal;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::apply::ApplyOptions;
use crate::cli::RunArgs;
use crate::etcd::Etcd;
use crate::logging::LogControl;
use crate::metrics;
use crate::snapshot::Snapshot;
use crate::status::Status;
use crate::supervise::{Reloader, Signals, Supervisor};
use crate::sync::{diff_color, load_jobs, own_snapshot, remove_leftovers, Exit, Job};
use crate::systemd;
use crate::watch::{self, Replica, Watched};
use crate::worker::{Wake, Worker};

/// Editors and Chef write a template in several steps; wait this long for quiet.
const TEMPLATE_SETTLE: Duration = Duration::from_millis(100);

/// Runs the daemon until SIGTERM/SIGINT; exits 2 when there is no valid entry at start.
pub async fn run(args: &RunArgs, mut log: LogControl) -> Exit {
    let jobs = match load_jobs(&args.config.cfgdir, &args.config.prefix) {
        Ok(loaded) if !loaded.jobs.is_empty() => loaded.jobs,
        Ok(_) => {
            error!(
                "no valid entry in {}; nothing to do",
                args.config.cfgdir.join("conf.d").display()
            );
            return Exit::Usage;
        }
        Err(e) => {
            error!("{e}");
            return Exit::Usage;
        }
    };
    let mut signals = match Signals::for_command(&args.command, &OWN_SIGNALS) {
        Ok(signals) => signals,
        Err(e) => {
            error!("{e}");
            return Exit::Failed;
        }
    };
    let status = Arc::new(Status::new(args.monitoring.unhealthy_after));
    if let Some(addr) = args.monitoring.metrics_addr {
        if let Err(e) = metrics::serve(addr, status.clone()).await {
            error!("{e}");
            return Exit::Failed;
        }
    }
    systemd::start_watchdog();
    // Signals are handled from here on, also while waiting for etcd at start-up.
    let connecting = args.connect.connect_when_up();
    tokio::pin!(connecting);
    let etcd = loop {
        tokio::select! {
            connected = &mut connecting => match connected {
                Ok(etcd) => break etcd,
                Err(e) => {
                    error!("{e}");
                    return Exit::Failed;
                }
            },
            signal = signals.recv() => if matches!(signal, Signal::SIGTERM | Signal::SIGINT) {
                info!("stopping before etcd was reached");
                systemd::stopping();
                return Exit::Ok;
            },
        }
    };
    status.etcd_up();
    let (template_tx, mut template_rx) = mpsc::unbounded_channel();
    let _template_watch = watch_templates(&args.config.cfgdir.join("templates"), template_tx);

    let (mut supervisor, reloader) = Supervisor::new();
    let settings = Settings {
        etcd,
        options: ApplyOptions {
            notreally: args.notreally,
            color: diff_color(),
        },
        debounce: args.debounce,
        reloader,
        synced: Arc::new(Notify::new()),
        status,
    };
    let mut generation = Generation::start(&settings, jobs);
    let mut ready = false;
    let child_exit = loop {
        tokio::select! {
            signal = signals.recv() => match signal {
                Signal::SIGUSR1 => {
                    let on = log.toggle_debug();
                    info!("debug logging {}", if on { "on" } else { "off" });
                }
                Signal::SIGHUP => {
                    info!("SIGHUP: reloading {}", args.config.cfgdir.display());
                    generation = reload(&settings, args, generation).await;
                }
                Signal::SIGTERM | Signal::SIGINT if !supervisor.running() => break None,
                other => supervisor.forward(other),
            },
            () = settings.synced.notified(), if !ready => {
                ready = true;
                if let Err(e) = supervisor.start(&args.command) {
                    error!("{e}");
                    break Some(e.exit_code());
                }
                systemd::ready();
            }
            code = supervisor.exited() => break Some(code),
            Some(()) = template_rx.recv() => {
                tokio::time::sleep(TEMPLATE_SETTLE).await;
                while template_rx.try_recv().is_ok() {}
                info!("a template changed on disk: reloading");
                generation = reload(&settings, args, generation).await;
            }
        }
    };
    info!("stopping: finishing writes in flight");
    systemd::stopping();
    generation.stop().await;
    match child_exit {
        None => Exit::Ok,
        // `Exit` holds reconfig's own outcomes; the child's status is passed on as it is.
        Some(code) => std::process::exit(i32::from(code)),
    }
}

/// The daemon's own signals, handled when no child is supervised.
const OWN_SIGNALS: [Signal; 4] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGUSR1,
];

/// What every generation shares.
#[derive(Clone)]
struct Settings {
    etcd: Etcd,
    options: ApplyOptions,
    debounce: Option<Duration>,
    /// Where workers send their entries' `reloadsignal`.
    reloader: Reloader,
    /// Notified by each generation once its first sync of every entry is done.
    synced: Arc<Notify>,
    /// The process's health, for monitoring.
    status: Arc<Status>,
}

/// Loads the configuration afresh and swaps generations; keeps the old one if the new
/// configuration has no valid entry.
async fn reload(settings: &Settings, args: &RunArgs, current: Generation) -> Generation {
    match load_jobs(&args.config.cfgdir, &args.config.prefix) {
        Ok(loaded) if !loaded.jobs.is_empty() => {
            current.stop().await;
            Generation::start(settings, loaded.jobs)
        }
        Ok(_) => {
            error!("reload: no valid entry; keeping the running configuration");
            current
        }
        Err(e) => {
            error!("reload: {e}; keeping the running configuration");
            current
        }
    }
}

/// Sends a message whenever something in the templates directory changes.
fn watch_templates(
    dir: &Path,
    tx: mpsc::UnboundedSender<()>,
) -> Option<notify::RecommendedWatcher> {
    use notify::{EventKind, RecursiveMode, Watcher};
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            if matches!(
                event.kind,
                EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
            ) {
                let _ = tx.send(());
            }
        }
    })
    .map_err(|e| warn!("cannot watch {}: {e}", dir.display()))
    .ok()?;
    watcher
        .watch(dir, RecursiveMode::NonRecursive)
        .map_err(|e| warn!("cannot watch {}: {e}", dir.display()))
        .ok()?;
    Some(watcher)
}

/// The running configuration: entry workers and the watch loop, stopped together.
struct Generation {
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Generation {
    fn start(settings: &Settings, jobs: Vec<Job>) -> Generation {
        let cancel = CancellationToken::new();
        let task = tokio::spawn(serve(settings.clone(), jobs, cancel.clone()));
        Generation { cancel, task }
    }

    /// Stops between renders and waits for writes in flight to finish.
    async fn stop(self) {
        self.cancel.cancel();
        if let Err(e) = self.task.await {
            error!("a worker failed: {e}");
        }
    }
}

/// Reads everything once (retrying while etcd is away) and syncs every entry from that
/// read, then starts one worker per entry and runs the watch loop from the next revision
/// until cancelled.
async fn serve(settings: Settings, jobs: Vec<Job>, cancel: CancellationToken) {
    let Settings {
        etcd,
        options,
        debounce,
        reloader,
        synced,
        status,
    } = settings;
    status.set_entries(jobs.iter().map(|j| j.entry.id.as_str()));
    // The previous generation has finished its writes: every staged file found is stale.
    remove_leftovers(&jobs, &options);
    let Some(snapshot) = first_read(&etcd, &jobs, &cancel).await else {
        return;
    };
    let mut subscribers: BTreeMap<String, (Arc<Replica>, Vec<Arc<Wake>>)> = BTreeMap::new();
    let mut workers = Vec::with_capacity(jobs.len());
    let entries = jobs.len();
    for job in jobs {
        let wake = Arc::new(Wake::default());
        let watched_keys: Vec<&str> = if job.entry.watchaltkeys {
            job.entry.read_keys().collect()
        } else {
            vec![job.entry.key.as_str()]
        };
        for key in watched_keys {
            subscribers
                .entry(key.to_string())
                .or_insert_with(|| (Arc::new(Replica::new(snapshot.subset([key]))), Vec::new()))
                .1
                .push(wake.clone());
        }
        let replica = job
            .entry
            .altkeys
            .is_empty()
            .then(|| subscribers[&job.entry.key].0.clone());
        let worker = Worker {
            replica,
            debounce: job.entry.debounce.or(debounce),
            job: Arc::new(job),
            etcd: etcd.clone(),
            wake,
            options: options.clone(),
            cancel: cancel.clone(),
            reloader: reloader.clone(),
            status: status.clone(),
        };
        workers.push(worker);
    }
    join_all(
        workers
            .iter()
            .map(|w| async { w.sync(&own_snapshot(&w.job, &snapshot)).await }),
    )
    .await;
    synced.notify_one();
    let revision = snapshot.revision();
    drop(snapshot);
    let mut tasks = JoinSet::new();
    for worker in workers {
        tasks.spawn(worker.run(revision));
    }
    info!(
        "watching {} key(s) for {entries} entr{} from revision {}",
        subscribers.len(),
        if entries == 1 { "y" } else { "ies" },
        revision + 1
    );
    let watched = subscribers
        .into_iter()
        .map(|(key, (replica, subscribers))| Watched {
            key,
            subscribers,
            replica,
        })
        .collect();
    watch::run(etcd, watched, revision + 1, cancel, status).await;
    while tasks.join_next().await.is_some() {}
}

/// The start-up read of every entry's keys at one revision; None when cancelled first.
async fn first_read(etcd: &Etcd, jobs: &[Job], cancel: &CancellationToken) -> Option<Snapshot> {
    let keys: Vec<&str> = jobs.iter().flat_map(|j| j.entry.read_keys()).collect();
    etcd.snapshot_retrying(&keys, cancel).await
}
