//! The watch as the daemon and dispense use it: each watched key's events go into its
//! [`Replica`], and its subscribers are woken with the revision they must see — after all
//! responses already waiting on the stream were applied, so one transaction touching
//! several watched keys wakes a subscriber once.

use std::sync::Arc;

use etcd_client::proto::PbEvent;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::follow::Wake;
use super::replica::Replica;
use super::stream::{Range, SessionError, Sink, WatchLoop};
use crate::etcd::client::Etcd;
use crate::etcd::error::EtcdError;

/// A watched key and the entries to wake when its tree changes.
pub struct Watched {
    /// The key; its whole tree is watched.
    pub key: String,
    /// One wake-up handle per interested entry.
    pub subscribers: Vec<Arc<Wake>>,
    /// The key's tree as the watch delivered it, for subscribers that read nothing else.
    pub replica: Arc<Replica>,
}

/// The daemon's and dispense's sink: replicas updated, subscribers woken, health recorded.
struct Subscriptions<'a> {
    etcd: &'a Etcd,
    watched: Vec<Watched>,
    /// Revisions subscribers must be woken for, booked until the next flush; kept across
    /// sessions so that a stream that breaks in the middle of a batch cannot swallow a
    /// wake-up already booked.
    woken: Vec<i64>,
    /// Told whether the stream is up (true) or broke (false).
    health: &'a (dyn Fn(bool) + Send + Sync),
}

impl Sink for Subscriptions<'_> {
    fn events(&mut self, index: usize, events: Vec<PbEvent>) {
        let watched = &self.watched[index];
        let revision = events
            .last()
            .and_then(|e| e.kv.as_ref())
            .map_or(0, |kv| kv.mod_revision);
        watched.replica.apply(&watched.key, &events, revision);
        debug!(
            "{} event(s) under {} up to revision {revision}",
            events.len(),
            watched.key
        );
        self.woken[index] = revision;
    }

    fn flush(&mut self) {
        for (w, revision) in self.watched.iter().zip(self.woken.iter_mut()) {
            let revision = std::mem::take(revision);
            if revision > 0 {
                w.subscribers.iter().for_each(|s| s.request(revision));
            }
        }
    }

    async fn compacted(&mut self, index: usize, from: i64, oldest: i64) -> Result<i64, EtcdError> {
        let key = self.watched[index].key.as_str();
        let tree = self.etcd.snapshot([key]).await?;
        let current = tree.revision();
        self.watched[index].replica.replace(tree);
        warn!(
            "revision {from} of {key} was compacted (oldest kept: {oldest}); re-reading at \
             revision {current}"
        );
        self.woken[index] = current;
        Ok(current + 1)
    }

    fn state(&mut self, broken: Option<&SessionError>) {
        match broken {
            None => {
                info!("watch re-established on {}", self.etcd.endpoints());
                (self.health)(true);
            }
            Some(e) => {
                warn!(
                    "watch lost ({e}); reconnecting to {}",
                    self.etcd.endpoints()
                );
                (self.health)(false);
            }
        }
    }
}

/// Watches every key from `start_revision` on until cancelled: replicas kept up to date,
/// subscribers woken on change, and `health` told when the stream breaks (false) and when
/// it is up again (true).
pub async fn subscriptions(
    etcd: Etcd,
    watched: Vec<Watched>,
    start_revision: i64,
    cancel: CancellationToken,
    health: impl Fn(bool) + Send + Sync,
) {
    let ranges = watched
        .iter()
        .map(|w| Range::tree(&w.key, start_revision))
        .collect();
    let sink = Subscriptions {
        etcd: &etcd,
        woken: vec![0; watched.len()],
        watched,
        health: &health,
    };
    tokio::select! {
        () = WatchLoop::new(&etcd, ranges, sink).run() => {}
        () = cancel.cancelled() => {}
    }
}
