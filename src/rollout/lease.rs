//! A node's lease while it takes part in a rollout: its queue key is bound to it, so a node
//! that dies (or loses etcd for longer than the TTL) gives up its place when the lease
//! expires. The lease is kept alive on one stream, re-opened after a break; granted when a
//! node first has a change to roll out and given up once its part is over.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::debug;

use crate::etcd::{Backoff, Etcd, EtcdError};

/// A granted lease, kept alive until dropped.
#[derive(Debug)]
pub struct Lease {
    id: i64,
    expired: Arc<Expired>,
    keeper: JoinHandle<()>,
}

/// Set once etcd says the lease is gone.
#[derive(Debug, Default)]
struct Expired {
    flag: AtomicBool,
    notify: Notify,
}

impl Lease {
    /// Grants a lease of `ttl` (whole seconds, at least 1) and starts keeping it alive.
    pub async fn grant(etcd: &Etcd, ttl: Duration) -> Result<Lease, EtcdError> {
        let seconds = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let mut client = etcd.client().lease_client();
        let granted = etcd.bounded(client.grant(seconds, None)).await?;
        let id = granted.id();
        let period = Duration::from_secs(u64::try_from(granted.ttl().max(1)).unwrap_or(1)) / 3;
        let expired = Arc::new(Expired::default());
        let keeper = tokio::spawn(keep_alive(etcd.clone(), id, period, expired.clone()));
        debug!("lease {id:x} granted for {}s", granted.ttl());
        Ok(Lease {
            id,
            expired,
            keeper,
        })
    }

    /// The lease's id.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// Whether etcd said the lease is gone.
    pub fn is_expired(&self) -> bool {
        self.expired.flag.load(Ordering::Acquire)
    }

    /// Waits until etcd says the lease is gone.
    pub async fn expired(&self) {
        loop {
            let notified = self.expired.notify.notified();
            if self.is_expired() {
                return;
            }
            notified.await;
        }
    }

    /// Revokes the lease (its keys go at once), within the request time limit; a failure
    /// only means the lease expires on its own.
    pub async fn revoke(self, etcd: &Etcd) {
        let mut client = etcd.client().lease_client();
        if let Err(e) = etcd.bounded(client.revoke(self.id)).await {
            debug!(
                "lease {:x} not revoked ({e}); it expires on its own",
                self.id
            );
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

/// Whether etcd's answer means the lease no longer exists.
pub fn is_gone(error: &EtcdError) -> bool {
    error.to_string().contains("lease not found")
}

/// Sends a keep-alive every `period` on one stream, re-opened (with backoff) whenever it
/// breaks, until etcd says the lease is gone.
async fn keep_alive(etcd: Etcd, id: i64, period: Duration, expired: Arc<Expired>) {
    let mut backoff = Backoff::new(etcd.endpoint_count());
    'streams: loop {
        let mut client = etcd.client().lease_client();
        // The first keep-alive goes out with the stream: "not found" means expired.
        let opened = etcd
            .bounded(async {
                match client.keep_alive(id).await {
                    Err(etcd_client::Error::LeaseKeepAliveError(e)) if e.contains("not found") => {
                        Ok(None)
                    }
                    other => other.map(Some),
                }
            })
            .await;
        let (mut keeper, mut stream) = match opened {
            Ok(Some(opened)) => opened,
            Ok(None) => break,
            Err(e) => {
                debug!("lease {id:x}: keep-alive stream not opened: {e}");
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
        };
        backoff.reset();
        loop {
            tokio::time::sleep(period).await;
            if keeper.keep_alive().await.is_err() {
                break;
            }
            match tokio::time::timeout(etcd.timeout(), stream.message()).await {
                Ok(Ok(Some(answer))) if answer.ttl() > 0 => {}
                Ok(Ok(Some(_))) => break 'streams,
                _ => break,
            }
        }
        debug!("lease {id:x}: keep-alive stream broke; re-opening it");
    }
    debug!("lease {id:x} expired");
    expired.flag.store(true, Ordering::Release);
    expired.notify.notify_waiters();
}
