//! `--follow`: every change under the prefix in v2 copied into v3 as it happens, until
//! SIGINT or SIGTERM.
//!
//! The v2 watch is asked for the first change at or after an index; after each change the
//! next index is that change's plus one, so a watch cut off by the network or a restarted
//! server resumes exactly where it stopped. When v2 no longer holds that index (it keeps
//! the last 1,000 changes of the whole store), the tree is read again and v3 brought in
//! step with it — keys v2 deleted meanwhile deleted too — and the watch goes on from that
//! read. A directory made, or its TTL changed, is read again the same way.
//!
//! v2 writes no change for a TTL refreshed without a new value (`refresh=true`), so while
//! following, the leases of the keys v2 holds are kept alive, and v2's own expiry (an
//! `expire` change) deletes a key from v3. A lease that ran out all the same (v3 away
//! longer than its TTL) has its keys read from v2 again and put back.

use std::collections::{BTreeMap, BTreeSet};

use nix::sys::signal::Signal;
use tokio::time::Instant;
use tracing::{debug, error, info};

use super::api::{Event, V2Error, Watched, V2};
use super::error::CopyError;
use super::tree::{Changes, Tree};
use super::write::{Patience, Writer};
use crate::etcd::{retry_until, until, EtcdError};
use crate::exit::Exit;
use crate::service::Signals;

/// Copies every change under `prefix` from `index` on, `copied` being what v3 was given so
/// far; 0 when stopped after every change was copied, 1 when v3 refused some (each one
/// logged).
pub async fn follow(
    v2: &V2,
    writer: &Writer,
    copied: Tree,
    prefix: &str,
    mut index: u64,
) -> Result<Exit, CopyError> {
    let mut signals = Signals::new(&[Signal::SIGINT, Signal::SIGTERM])?;
    info!(
        "following the changes under {prefix} in etcd v2 at {} from index {index}, until \
         SIGINT or SIGTERM",
        v2.url()
    );
    let mut follower = Follower {
        v2,
        writer,
        prefix,
        copied,
        refused: 0,
    };
    // One watch from `index`, kept while leases are renewed: a long poll given up for a
    // renewal would be sent again, and its connection lost with it.
    let watch_from = |index| {
        Box::pin(retry_until(
            "watching etcd v2",
            0,
            V2Error::is_transient,
            move || v2.watch(prefix, index),
        ))
    };
    let mut watch = watch_from(index);
    loop {
        let due = writer.next_renewal().await;
        let step = tokio::select! {
            signal = signals.recv() => {
                info!("{signal}: stopped following at index {index}");
                break;
            }
            watched = &mut watch => Step::Watched(watched?),
            () = until(due) => Step::Renew,
        };
        let answered = matches!(step, Step::Watched(_));
        let mut stepping = std::pin::pin!(follower.step(step, index));
        tokio::select! {
            signal = signals.recv() => {
                // The change in hand is finished, unless v3 stays away for a request's
                // time limit.
                let grace = writer.etcd().timeout();
                let finished = tokio::time::timeout(grace, &mut stepping).await;
                let at = match finished {
                    Ok(Ok(next)) => next,
                    _ => index,
                };
                info!("{signal}: stopped following at index {at}");
                break;
            }
            next = &mut stepping => index = next?,
        }
        if answered {
            watch = watch_from(index);
        }
    }
    Ok(if follower.refused == 0 {
        Exit::Ok
    } else {
        Exit::Failed
    })
}

/// What woke the follower.
enum Step {
    /// The watch answered.
    Watched(Watched),
    /// A lease is due for renewal.
    Renew,
}

/// The state of following.
struct Follower<'a> {
    v2: &'a V2,
    writer: &'a Writer,
    prefix: &'a str,
    /// What v3 was given: v2's tree as the copy knows it.
    copied: Tree,
    /// Changes v3 refused.
    refused: usize,
}

impl Follower<'_> {
    /// Handles one step; returns the index to watch from next.
    async fn step(&mut self, step: Step, index: u64) -> Result<u64, CopyError> {
        match step {
            Step::Renew => {
                self.renew().await?;
                Ok(index)
            }
            Step::Watched(Watched::Nothing) => Ok(index),
            Step::Watched(Watched::Cleared) => {
                info!(
                    "etcd v2 no longer holds the changes from index {index} (it keeps the last \
                     1,000): copying everything under {} again",
                    self.prefix
                );
                let (now, at) = self.read_or_empty(self.prefix).await?;
                self.sync(self.prefix, now).await?;
                Ok(at + 1)
            }
            Step::Watched(Watched::Event(event)) => {
                let next = index.max(event.node.modified_index + 1);
                self.apply(event).await?;
                Ok(next)
            }
        }
    }

    /// Copies one v2 change.
    async fn apply(&mut self, event: Event) -> Result<(), CopyError> {
        let key = event.node.key.clone().unwrap_or_else(|| "/".into());
        debug!(
            "v2 {} {key} at index {}",
            event.action, event.node.modified_index
        );
        match (event.action.as_str(), event.node.dir) {
            ("set" | "create" | "update" | "compareAndSwap", false) => {
                let value = event.node.value.unwrap_or_default();
                let copy = self.copied.set(&key, value, event.node.ttl, Instant::now());
                self.write(Changes {
                    puts: vec![(key, copy)],
                    deletes: vec![],
                })
                .await
            }
            ("delete" | "compareAndDelete" | "expire", _) => {
                let deletes = self.copied.within(&key).map(|(k, _)| k.clone()).collect();
                self.copied.take_dirs(&key, BTreeMap::new());
                self.write(Changes {
                    puts: vec![],
                    deletes,
                })
                .await
            }
            // A directory made or its TTL changed (or an action not known here): what v2
            // holds there now is read and copied.
            _ => {
                let (now, _) = self.read_or_empty(&key).await?;
                self.sync(&key, now).await
            }
        }
    }

    /// Renews the leases of the keys v2 holds; the keys of a lease that ran out are read
    /// from v2 again and put back.
    async fn renew(&mut self) -> Result<(), CopyError> {
        let live: BTreeSet<i64> = self.copied.keys.values().map(|copy| copy.lease).collect();
        let holds = |lease: i64| live.contains(&lease);
        let lost = retry_until(
            "renewing leases in etcd v3",
            0,
            EtcdError::is_transient,
            || self.writer.renew(holds),
        )
        .await?;
        if lost.is_empty() {
            return Ok(());
        }
        let gone: Vec<String> = self
            .copied
            .keys
            .iter()
            .filter(|(_, copy)| lost.contains(&copy.lease))
            .map(|(key, _)| key.clone())
            .collect();
        info!(
            "{} keys lost their lease in v3 (it ran out while v3 was away): reading them \
             from v2 again",
            gone.len()
        );
        self.copied.take(Changes {
            puts: vec![],
            deletes: gone,
        });
        let (fresh, _) = self.read_or_empty(self.prefix).await?;
        self.sync(self.prefix, fresh).await
    }

    /// The v2 tree at and below `key` now (empty when v2 has nothing there), and the index
    /// it was read at; waits while v2 is unreachable.
    async fn read_or_empty(&self, key: &str) -> Result<(Tree, u64), CopyError> {
        let read = retry_until("reading etcd v2", 0, V2Error::is_transient, || {
            self.v2.read(key)
        });
        match read.await {
            Ok(read) => Ok((Tree::of(&read), read.index)),
            Err(V2Error::NotFound { index, .. }) => Ok((Tree::default(), index)),
            Err(other) => Err(other.into()),
        }
    }

    /// Brings v3 in step with `newer`, a fresh read of the tree at and below `root`.
    async fn sync(&mut self, root: &str, newer: Tree) -> Result<(), CopyError> {
        let refused = self
            .writer
            .sync(&mut self.copied, root, newer, Patience::Until)
            .await?;
        self.log_refused(refused);
        Ok(())
    }

    /// Writes changes into v3, waiting while it is unreachable.
    async fn write(&mut self, changes: Changes) -> Result<(), CopyError> {
        let written = self.writer.write(&changes, Patience::Until).await?;
        self.copied.take(written.changes);
        self.log_refused(written.refused);
        Ok(())
    }

    fn log_refused(&mut self, refused: Vec<super::batch::Refused>) {
        for refusal in refused {
            error!("{}: v3 refused the change: {}", refusal.key, refusal.error);
            self.refused += 1;
        }
    }
}
