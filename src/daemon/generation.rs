//! A generation: the running configuration — one worker per entry and the watch over
//! their keys — started from one read of every key at one revision and stopped together.
//! SIGHUP or a template change swaps generations: the old one finishes any write in flight,
//! the new one starts with a full read at the current revision, so nothing that happened
//! during the swap is missed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use super::reload::{reload, Pending, ReloadTask};
use super::worker::Rollout;
use super::worker::{Synced, Worker};
use crate::apply::{ApplyOptions, Syncs};
use crate::etcd::watch::{subscriptions, Replica, Wake, Watched};
use crate::etcd::{Backoff, Etcd};
use crate::pipeline::{own_snapshot, recover, remove_leftovers, Job};
use crate::rollout;
use crate::service::retry::Pacing;
use crate::service::{Reloader, Status};
use crate::state::StateDir;

/// What every generation shares.
#[derive(Clone)]
pub struct Shared {
    /// The process's connection.
    pub etcd: Etcd,
    /// Write or preview.
    pub options: ApplyOptions,
    /// `--debounce`, for entries without their own.
    pub debounce: Option<Duration>,
    /// `--reload-interval`, for entries without their own.
    pub reload_interval: Duration,
    /// Where entries' `reloadsignal` goes.
    pub reloader: Reloader,
    /// Notified by each generation once its first sync of every entry is done.
    pub synced: Arc<Notify>,
    /// The process's health, for monitoring.
    pub status: Arc<Status>,
    /// Where each entry's state is kept (none: not remembered across restarts).
    pub state: Option<StateDir>,
    /// How failed changes and reloads are retried.
    pub retry: Pacing,
    /// Where and as whom entries with a `rollout` object take part in their groups.
    pub rollout: rollout::Settings,
}

/// The running configuration: entry workers and the watch loop, stopped together.
pub struct Generation {
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Generation {
    pub fn start(settings: &Shared, jobs: Vec<Job>) -> Generation {
        let cancel = CancellationToken::new();
        let task = tokio::spawn(serve(settings.clone(), jobs, cancel.clone()));
        Generation { cancel, task }
    }

    /// Stops between renders and waits for writes in flight to finish.
    pub async fn stop(self) {
        self.cancel.cancel();
        if let Err(e) = self.task.await {
            error!("a worker failed: {e}");
        }
    }
}

/// Reads everything once (retrying while etcd is away) and syncs every entry from that
/// read, then starts one worker per entry and runs the watch loop from the next revision
/// until cancelled.
async fn serve(settings: Shared, jobs: Vec<Job>, cancel: CancellationToken) {
    let Shared {
        etcd,
        options,
        debounce,
        reload_interval,
        reloader,
        synced,
        status,
        state: _,
        retry,
        rollout,
    } = settings;
    status.set_entries(jobs.iter().map(|j| j.entry.id.as_str()));
    // The previous generation has finished its writes: every staged file found is stale.
    remove_leftovers(&jobs, &options);
    let keys: Vec<&str> = jobs.iter().flat_map(|j| j.entry.read_keys()).collect();
    let snapshot = tokio::select! {
        snapshot = etcd.snapshot_retrying(&keys) => snapshot,
        () = cancel.cancelled() => return,
    };
    drop(keys);
    let mut watched: BTreeMap<String, Watched> = BTreeMap::new();
    let mut workers = Vec::with_capacity(jobs.len());
    let mut reloads = JoinSet::new();
    let flush = CancellationToken::new();
    let entries = jobs.len();
    for job in jobs {
        let job = Arc::new(job);
        let wake = Arc::new(Wake::default());
        let watched_keys: Vec<&str> = job.entry.watched_keys().collect();
        for key in watched_keys {
            watched
                .entry(key.to_string())
                .or_insert_with(|| Watched {
                    key: key.to_string(),
                    subscribers: Vec::new(),
                    replica: Arc::new(Replica::new(snapshot.subset([key]))),
                })
                .subscribers
                .push(wake.clone());
        }
        let replica =
            (job.entry.read_keys().count() == 1).then(|| watched[&job.entry.key].replica.clone());
        let reload = job.entry.reloads().then(|| Arc::new(Pending::default()));
        // A preview takes no part in rollouts: it writes nothing, to etcd either.
        let rollout = Rollout::of(&job, &etcd, &rollout, &reloader)
            .filter(|_| !options.notreally)
            .map(Box::new);
        let worker = Worker {
            replica,
            debounce: job.entry.debounce.or(debounce),
            job,
            etcd: etcd.clone(),
            wake,
            options: options.clone(),
            cancel: cancel.clone(),
            reload,
            status: status.clone(),
            slow: Default::default(),
            model: Default::default(),
            rollout,
        };
        workers.push(worker);
    }
    // The first sync reloads what changed before anyone is told: a child started then
    // finds the services it depends on reloaded, and gets none of these signals.
    let mut backoffs: Vec<Backoff> = workers.iter().map(|_| retry.backoff()).collect();
    let first = workers.iter().zip(&mut backoffs).map(|(w, backoff)| async {
        // What the previous run left unfinished: a change not yet checked is checked now,
        // a reload still due runs below, with this sync's own.
        let due = recover(&w.job).await;
        // Every entry at once: the files are synced side by side on the blocking pool.
        let own = own_snapshot(&w.job, &snapshot);
        let synced = w.sync(&own, Syncs::Shared, backoff).await;
        let retry = match synced {
            Synced::Failed {
                retry_in: Some(delay),
            } => Some((own, Instant::now() + delay)),
            // A change to roll out: the worker takes it first thing.
            Synced::Deferred => Some((own, Instant::now())),
            _ => None,
        };
        let reloaded = if w.reload.is_some() && (due || synced == Synced::Changed) {
            status.reload_due(&w.job.entry.id);
            let at = Instant::now();
            Some((at, reload(&w.job, &reloader, &status).await))
        } else {
            None
        };
        (reloaded, retry)
    });
    let (reloaded, retries): (Vec<_>, Vec<_>) = join_all(first).await.into_iter().unzip();
    for (worker, reloaded) in workers.iter().zip(reloaded) {
        let Some(pending) = &worker.reload else {
            continue;
        };
        let mut backoff = retry.backoff();
        let retry_at = reloaded
            .filter(|(_, ok)| !ok)
            .map(|_| Instant::now() + backoff.next_delay());
        let task = ReloadTask {
            last: reloaded.map(|(at, _)| at),
            job: worker.job.clone(),
            pending: pending.clone(),
            interval: worker.job.entry.reload_interval.unwrap_or(reload_interval),
            child: reloader.clone(),
            status: status.clone(),
            flush: flush.clone(),
            backoff,
            retry_at,
        };
        reloads.spawn(task.run());
    }
    synced.notify_one();
    let revision = snapshot.revision();
    drop(snapshot);
    let mut tasks = JoinSet::new();
    for ((worker, retry), backoff) in workers.into_iter().zip(retries).zip(backoffs) {
        tasks.spawn(worker.run(revision, retry, backoff));
    }
    info!(
        "watching {} key(s) for {entries} entr{} from revision {}",
        watched.len(),
        if entries == 1 { "y" } else { "ies" },
        revision + 1
    );
    let health = move |up| status.watch_state(up);
    let watched = watched.into_values().collect();
    subscriptions(etcd, watched, revision + 1, cancel, health).await;
    while tasks.join_next().await.is_some() {}
    // Every worker is done: no reload can be asked for any more; the waiting ones run now.
    flush.cancel();
    while reloads.join_next().await.is_some() {}
}
