//! The copy's writes into v3: keys put at their v2 paths, keys that expire on a lease
//! that ends when they do, and keys deleted.
//!
//! Leases: one per second in which copied keys expire. A key goes on the lease of the
//! second its v2 expiry falls in, granted to end at the end of that second or up to a
//! second later (etcd counts TTLs in whole seconds): v3 never drops a key before v2 does,
//! and at most two seconds after (etcd may raise a very short TTL to its minimum lease).
//! A 5,000-key tree of registrations with the same TTL takes one lease. While following,
//! the leases of keys v2 still holds are kept alive ([`Writer::renew`]): v2's own expiry
//! then deletes them, and a TTL refreshed in v2 — which v2 tells no watcher — keeps them.

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_client::{PutOptions, TxnOp};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::batch::{self, Op, Refused};
use super::tree::{Changes, Tree};
use crate::etcd::{retry_until, retry_within, Etcd, EtcdError};

/// Writes into v3 through the process's connection, granting leases as keys need them.
pub struct Writer {
    etcd: Etcd,
    leases: Mutex<Leases>,
}

/// Renewals per TTL of a lease kept alive: a renewal may come late, or fail once, and the
/// lease still lives.
const RENEWALS: u32 = 3;

/// How a write waits while etcd is unreachable.
#[derive(Debug, Clone, Copy)]
pub enum Patience {
    /// Within the connect timeout: the one-shot copy, like `--onetime`.
    Within,
    /// Until etcd answers: following, which must not lose a change.
    Until,
}

/// The leases granted so far.
struct Leases {
    start: Instant,
    /// Lease by the second (since `start`) at whose end it was granted to expire.
    granted: BTreeMap<u64, i64>,
    /// Every lease not let go, with its TTL and when it is next due for renewal.
    kept: BTreeMap<i64, Kept>,
}

impl Leases {
    /// Lets a lease go: no renewal, no new keys on it.
    fn forget(&mut self, id: i64) {
        self.kept.remove(&id);
        self.granted.retain(|_, granted| *granted != id);
    }
}

/// A lease to renew while its keys live.
struct Kept {
    ttl: Duration,
    due: Instant,
}

/// What a write did: the keys put, each with the lease it went on, and the keys refused.
#[derive(Debug, Default)]
pub struct Written {
    /// The changes as written: each put with its `lease` set.
    pub changes: Changes,
    /// Keys etcd refused to write or delete.
    pub refused: Vec<Refused>,
}

impl Writer {
    /// A writer on `etcd`.
    pub fn new(etcd: Etcd) -> Writer {
        Writer {
            etcd,
            leases: Mutex::new(Leases {
                start: Instant::now(),
                granted: BTreeMap::new(),
                kept: BTreeMap::new(),
            }),
        }
    }

    /// The connection, for reading back.
    pub fn etcd(&self) -> &Etcd {
        &self.etcd
    }

    /// Brings v3, and `copied` (what v3 was given so far), in step with `newer`, a fresh
    /// read of the v2 tree at and below `root`. Returns the keys etcd refused.
    pub async fn sync(
        &self,
        copied: &mut Tree,
        root: &str,
        newer: Tree,
        patience: Patience,
    ) -> Result<Vec<Refused>, EtcdError> {
        let changes = copied.changes_to(root, &newer);
        let written = self.write(&changes, patience).await?;
        copied.take(written.changes);
        copied.take_dirs(root, newer.dirs);
        Ok(written.refused)
    }

    /// [`Self::apply`], tried again while etcd is unreachable, as `patience` says.
    pub async fn write(&self, changes: &Changes, patience: Patience) -> Result<Written, EtcdError> {
        let quick = self.etcd.endpoint_count();
        let attempt = || self.apply(changes);
        match patience {
            Patience::Within => {
                retry_within(self.etcd.timeout(), quick, EtcdError::is_transient, attempt).await
            }
            Patience::Until => {
                retry_until(
                    "writing to etcd v3",
                    quick,
                    EtcdError::is_transient,
                    attempt,
                )
                .await
            }
        }
    }

    /// Deletes and puts, each put on the lease of its expiry. Fails only when etcd cannot
    /// be reached (every request is idempotent: the whole call may be repeated).
    async fn apply(&self, changes: &Changes) -> Result<Written, EtcdError> {
        let deletes = changes.deletes.iter().map(|key| Op {
            key: key.clone(),
            op: TxnOp::delete(key.as_str(), None),
            bytes: key.len(),
        });
        let mut refused = batch::run(&self.etcd, deletes.collect()).await?.refused;
        let mut puts = changes.puts.clone();
        let mut ops = Vec::with_capacity(puts.len());
        for (key, copied) in &mut puts {
            copied.lease = match copied.expires {
                Some(expires) => self.lease_until(expires).await?,
                None => 0,
            };
            let options = (copied.lease != 0).then(|| PutOptions::new().with_lease(copied.lease));
            ops.push(Op {
                key: key.clone(),
                op: TxnOp::put(key.as_str(), copied.value.as_str(), options),
                bytes: key.len() + copied.value.len(),
            });
        }
        refused.extend(batch::run(&self.etcd, ops).await?.refused);
        let deletes = changes.deletes.clone();
        Ok(Written {
            changes: Changes { puts, deletes },
            refused,
        })
    }

    /// The lease for keys expiring at `expires`: the one of its second, granted when first
    /// needed.
    async fn lease_until(&self, expires: Instant) -> Result<i64, EtcdError> {
        let mut leases = self.leases.lock().await;
        let second = expires.saturating_duration_since(leases.start).as_secs() + 1;
        if let Some(id) = leases.granted.get(&second) {
            return Ok(*id);
        }
        let now = Instant::now();
        let end = leases.start + Duration::from_secs(second);
        let ttl = end
            .saturating_duration_since(now)
            .as_secs_f64()
            .ceil()
            .max(1.0);
        let mut client = self.etcd.client().lease_client();
        let granted = self.etcd.bounded(client.grant(ttl as i64, None)).await?;
        let past = now.saturating_duration_since(leases.start).as_secs();
        leases.granted.retain(|&s, _| s > past);
        leases.granted.insert(second, granted.id());
        let ttl = Duration::from_secs(u64::try_from(granted.ttl()).unwrap_or(1).max(1));
        let due = now + ttl / RENEWALS;
        leases.kept.insert(granted.id(), Kept { ttl, due });
        Ok(granted.id())
    }

    /// When the next lease is due for renewal.
    pub async fn next_renewal(&self) -> Option<Instant> {
        let leases = self.leases.lock().await;
        leases.kept.values().map(|kept| kept.due).min()
    }

    /// Renews the leases due whose keys `holds` says v2 still holds, and lets the others
    /// go. Returns the leases etcd no longer knew (they ran out: their keys are gone from
    /// v3).
    pub async fn renew(&self, holds: impl Fn(i64) -> bool) -> Result<Vec<i64>, EtcdError> {
        let mut leases = self.leases.lock().await;
        let idle: Vec<i64> = leases
            .kept
            .keys()
            .copied()
            .filter(|id| !holds(*id))
            .collect();
        for id in idle {
            leases.forget(id);
        }
        let now = Instant::now();
        let due: Vec<i64> = leases
            .kept
            .iter()
            .filter(|(_, kept)| kept.due <= now)
            .map(|(id, _)| *id)
            .collect();
        let mut lost = Vec::new();
        for id in due {
            let mut client = self.etcd.client().lease_client();
            let renewed = self.etcd.bounded(async move {
                match client.keep_alive(id).await {
                    Ok(_) => Ok(true),
                    Err(etcd_client::Error::LeaseKeepAliveError(_)) => Ok(false),
                    Err(other) => Err(other),
                }
            });
            if renewed.await? {
                if let Some(kept) = leases.kept.get_mut(&id) {
                    kept.due = Instant::now() + kept.ttl / RENEWALS;
                }
            } else {
                leases.forget(id);
                lost.push(id);
            }
        }
        Ok(lost)
    }
}
