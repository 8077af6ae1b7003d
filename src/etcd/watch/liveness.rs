//! Whether a watch stream's server still answers. A stream that brought nothing for the
//! check interval (`--watch-check`) is checked with a small read at the endpoint that
//! serves it, over the stream's own connection; an answer, whatever it says, keeps the
//! stream; none within the request time limit means the server stopped answering (frozen,
//! paused, cut off by a firewall that drops packets), and the stream is abandoned.
//!
//! A read rather than an HTTP/2 ping, because `etcd grpc-proxy` closes connections pinged
//! more often than every 5 minutes (gRPC's "too_many_pings"); and rather than etcd's
//! watch progress request, because the proxy does not answer those. A read is answered by
//! a member and by a proxy alike, at any rate.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::time::Instant;

use crate::etcd::client::Etcd;
use crate::etcd::error::EtcdError;

/// A check under way.
type Check = Pin<Box<dyn Future<Output = Result<(), EtcdError>> + Send>>;

/// The liveness of one watch stream.
pub(super) struct Liveness {
    etcd: Etcd,
    /// The endpoint serving the stream.
    endpoint: usize,
    /// The key the check reads (one the watch may read).
    key: Vec<u8>,
    /// Silence before a check; `None`: never checked.
    after: Option<Duration>,
    /// When the stream last showed it is alive.
    heard: Instant,
    /// The check under way, kept while the stream's other events are handled.
    check: Option<Check>,
}

impl Liveness {
    /// The liveness of a stream just opened at `endpoint`.
    pub(super) fn new(etcd: &Etcd, endpoint: usize, key: &[u8]) -> Liveness {
        Liveness {
            etcd: etcd.clone(),
            endpoint,
            key: key.to_vec(),
            after: etcd.watch_check(),
            heard: Instant::now(),
            check: None,
        }
    }

    /// Something arrived on the stream: it is alive, no check is needed.
    pub(super) fn heard(&mut self) {
        self.heard = Instant::now();
        self.check = None;
    }

    /// Completes when the stream is to be abandoned, with why: after a silence, a check
    /// that got no answer. Never completes when checks are off. Dropping it loses
    /// nothing: a check under way is kept for the next call.
    pub(super) async fn dead(&mut self) -> EtcdError {
        let Some(after) = self.after else {
            return std::future::pending().await;
        };
        loop {
            let check = match &mut self.check {
                Some(check) => check,
                None => {
                    tokio::time::sleep_until(self.heard + after).await;
                    let (etcd, endpoint, key) = (self.etcd.clone(), self.endpoint, self.key.clone());
                    self.check
                        .insert(Box::pin(async move { etcd.check(endpoint, &key).await }))
                }
            };
            let answered = check.await;
            self.check = None;
            match answered {
                Ok(()) => self.heard = Instant::now(),
                Err(e) => return e,
            }
        }
    }
}
