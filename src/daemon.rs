//! Daemon mode: render every entry once, then keep them in step with etcd until told to
//! stop. This module owns the process's life: signals, reloads and shutdown.
//!
//! The running configuration is a [`Generation`]: the workers of the current entries plus
//! the watch loop. SIGHUP, or a template file changing on disk, loads `conf.d` and the
//! templates afresh and swaps generations: the old one finishes any write in flight, the new
//! one starts with a full sync at the current revision, so nothing that happened during the
//! swap is missed. SIGTERM/SIGINT stop the generation the same way and exit 0. SIGUSR1
//! toggles debug logging.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::apply::ApplyOptions;
use crate::cli::RunArgs;
use crate::etcd::Etcd;
use crate::logging::LogControl;
use crate::snapshot::Snapshot;
use crate::sync::{diff_color, load_jobs, Exit, Job};
use crate::watch::{self, Watched};
use crate::worker::{Wake, Worker};

/// Editors and Chef write a template in several steps; wait this long for quiet.
const TEMPLATE_SETTLE: Duration = Duration::from_millis(100);

/// Runs the daemon until SIGTERM/SIGINT; exits 2 when there is no valid entry at start.
pub async fn run(args: &RunArgs, mut log: LogControl) -> Exit {
    let jobs = match load_jobs(&args.cfgdir, &args.prefix) {
        Ok(loaded) if !loaded.jobs.is_empty() => loaded.jobs,
        Ok(_) => {
            error!(
                "no valid entry in {}; nothing to do",
                args.cfgdir.join("conf.d").display()
            );
            return Exit::Usage;
        }
        Err(e) => {
            error!("{e}");
            return Exit::Usage;
        }
    };
    let etcd = match Etcd::connect(&args.connect.resolve()).await {
        Ok(etcd) => etcd,
        Err(e) => {
            error!("{e}");
            return Exit::Failed;
        }
    };
    let (Ok(mut term), Ok(mut int), Ok(mut hup), Ok(mut usr1)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
        signal(SignalKind::user_defined1()),
    ) else {
        error!("cannot install signal handlers");
        return Exit::Failed;
    };
    let (template_tx, mut template_rx) = mpsc::unbounded_channel();
    let _template_watch = watch_templates(&args.cfgdir.join("templates"), template_tx);

    let settings = Settings {
        etcd,
        options: ApplyOptions {
            notreally: args.notreally,
            color: diff_color(),
        },
        debounce: args.debounce,
    };
    let mut generation = Generation::start(&settings, jobs);
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = usr1.recv() => {
                let on = log.toggle_debug();
                info!("debug logging {}", if on { "on" } else { "off" });
            }
            _ = hup.recv() => {
                info!("SIGHUP: reloading {}", args.cfgdir.display());
                generation = reload(&settings, args, generation).await;
            }
            Some(()) = template_rx.recv() => {
                tokio::time::sleep(TEMPLATE_SETTLE).await;
                while template_rx.try_recv().is_ok() {}
                info!("a template changed on disk: reloading");
                generation = reload(&settings, args, generation).await;
            }
        }
    }
    info!("stopping: finishing writes in flight");
    generation.stop().await;
    Exit::Ok
}

/// What every generation shares.
struct Settings {
    etcd: Etcd,
    options: ApplyOptions,
    debounce: Option<Duration>,
}

/// Loads the configuration afresh and swaps generations; keeps the old one if the new
/// configuration has no valid entry.
async fn reload(settings: &Settings, args: &RunArgs, current: Generation) -> Generation {
    match load_jobs(&args.cfgdir, &args.prefix) {
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
        let task = tokio::spawn(serve(
            settings.etcd.clone(),
            jobs,
            settings.options.clone(),
            settings.debounce,
            cancel.clone(),
        ));
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

/// Reads everything once (retrying while etcd is away), starts one worker per entry, then
/// runs the watch loop from the next revision until cancelled.
async fn serve(
    etcd: Etcd,
    jobs: Vec<Job>,
    options: ApplyOptions,
    debounce: Option<Duration>,
    cancel: CancellationToken,
) {
    let Some(snapshot) = first_read(&etcd, &jobs, &cancel).await else {
        return;
    };
    let snapshot = Arc::new(snapshot);
    let mut subscribers: BTreeMap<String, Vec<Arc<Wake>>> = BTreeMap::new();
    let mut workers = JoinSet::new();
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
                .or_default()
                .push(wake.clone());
        }
        let worker = Worker {
            debounce: job.entry.debounce.or(debounce),
            job: Arc::new(job),
            etcd: etcd.clone(),
            wake,
            options: options.clone(),
            cancel: cancel.clone(),
        };
        workers.spawn(worker.run(snapshot.clone()));
    }
    let revision = snapshot.revision();
    drop(snapshot);
    info!(
        "watching {} key(s) for {entries} entr{} from revision {}",
        subscribers.len(),
        if entries == 1 { "y" } else { "ies" },
        revision + 1
    );
    let watched = subscribers
        .into_iter()
        .map(|(key, subscribers)| Watched { key, subscribers })
        .collect();
    watch::run(etcd, watched, revision + 1, cancel).await;
    while workers.join_next().await.is_some() {}
}

/// The start-up read of every entry's keys at one revision; None when cancelled first.
async fn first_read(etcd: &Etcd, jobs: &[Job], cancel: &CancellationToken) -> Option<Snapshot> {
    let keys: Vec<&str> = jobs.iter().flat_map(|j| j.entry.read_keys()).collect();
    etcd.snapshot_retrying(&keys, cancel).await
}
