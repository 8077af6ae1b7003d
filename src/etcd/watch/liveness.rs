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
    /// Starts a check of the stream's server.
    probe: Box<dyn Fn() -> Check + Send>,
    /// Silence before a check; `None`: never checked.
    after: Option<Duration>,
    /// When the stream last showed it is alive.
    heard: Instant,
    /// The check under way, kept while the stream's other events are handled.
    check: Option<Check>,
}

impl Liveness {
    /// The liveness of a stream just opened at `endpoint`, checked by reading `key` (one
    /// the watch may read) there.
    pub(super) fn of_stream(etcd: &Etcd, endpoint: usize, key: &[u8]) -> Liveness {
        let (etcd, key) = (etcd.clone(), key.to_vec());
        let after = etcd.watch_check();
        Liveness::new(after, move || {
            let (etcd, key) = (etcd.clone(), key.clone());
            Box::pin(async move { etcd.check(endpoint, &key).await })
        })
    }

    fn new(after: Option<Duration>, probe: impl Fn() -> Check + Send + 'static) -> Liveness {
        Liveness {
            probe: Box::new(probe),
            after,
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
                    self.check.insert((self.probe)())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    const AFTER: Duration = Duration::from_secs(5);

    /// A liveness whose checks take `takes` and answer (or not, `answers` false); with
    /// the number of checks started.
    fn liveness(takes: Duration, answers: bool) -> (Liveness, Arc<AtomicUsize>) {
        let started = Arc::new(AtomicUsize::new(0));
        let count = started.clone();
        let live = Liveness::new(Some(AFTER), move || {
            count.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                tokio::time::sleep(takes).await;
                if answers {
                    Ok(())
                } else {
                    Err(EtcdError::TimedOut {
                        endpoints: "http://e:2379".into(),
                        after: takes,
                    })
                }
            })
        });
        (live, started)
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_stream_whose_server_answers_is_kept() {
        let (mut live, started) = liveness(Duration::from_millis(10), true);
        let minute = tokio::time::timeout(Duration::from_secs(60), live.dead()).await;
        assert!(minute.is_err(), "never dead");
        // A check after each 5 s of silence counted from the last answer: at 5 s,
        // 10.01 s, ... 55.1 s; the 12th would start at 60.11 s.
        assert_eq!(started.load(Ordering::SeqCst), 11);
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_without_answer_ends_the_stream() {
        let (mut live, started) = liveness(Duration::from_secs(5), false);
        let begin = Instant::now();
        let why = live.dead().await;
        assert_eq!(
            begin.elapsed(),
            Duration::from_secs(10),
            "5 s silent, 5 s unanswered"
        );
        assert!(why.to_string().contains("no answer within 5s"), "{why}");
        assert_eq!(started.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn events_spare_the_checks() {
        let (mut live, started) = liveness(Duration::from_secs(5), false);
        for _ in 0..20 {
            let quiet = tokio::time::timeout(Duration::from_secs(3), live.dead()).await;
            assert!(quiet.is_err());
            live.heard();
        }
        assert_eq!(started.load(Ordering::SeqCst), 0);
        // A check that an event makes moot is dropped: the stream lives on.
        let _ = tokio::time::timeout(Duration::from_secs(7), live.dead()).await;
        assert_eq!(started.load(Ordering::SeqCst), 1);
        live.heard();
        let quiet = tokio::time::timeout(Duration::from_secs(4), live.dead()).await;
        assert!(quiet.is_err(), "no check left over");
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_under_way_survives_the_other_branches() {
        let (mut live, started) = liveness(Duration::from_secs(5), false);
        let begin = Instant::now();
        // The stream's select drops `dead` whenever another branch wins.
        for _ in 0..9 {
            let _ = tokio::time::timeout(Duration::from_secs(1), live.dead()).await;
        }
        live.dead().await;
        assert_eq!(begin.elapsed(), Duration::from_secs(10));
        assert_eq!(started.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn checks_off_never_end_a_stream() {
        let mut live = Liveness::new(None, || unreachable!("no check when off"));
        let day = tokio::time::timeout(Duration::from_secs(86_400), live.dead()).await;
        assert!(day.is_err());
    }
}
