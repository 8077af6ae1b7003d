//! The one way reconfig retries against etcd: capped exponential backoff with jitter (many
//! daemons retrying in lock-step would hammer a recovering cluster), either within a time
//! limit (one-shot commands) or until etcd answers (the daemon and dispense). The watch
//! loop paces its reconnects with the same [`Backoff`].

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;
use tracing::{info, warn};

/// Delays of 50 ms doubling up to a cap, each randomly shortened by up to half.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    cap: Duration,
}

const FIRST: Duration = Duration::from_millis(50);

impl Backoff {
    /// Starts at 50 ms and never waits longer than `cap`.
    pub fn new(cap: Duration) -> Self {
        Backoff { next: FIRST, cap }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let full = self.next;
        self.next = (self.next * 2).min(self.cap);
        let jitter = rand::rng().random_range(0.5..=1.0);
        full.mul_f64(jitter)
    }

    /// Back to the shortest delay, after a success.
    pub fn reset(&mut self) {
        self.next = FIRST;
    }
}

/// Runs `attempt` until it succeeds, fails for good, or the next try would start after
/// `limit` from now. For one-shot commands against a cluster: a request that happened to
/// go to a member that is down is tried again instead of failing the whole run.
pub async fn retry_within<T, E, Fut>(
    limit: Duration,
    is_transient: impl Fn(&E) -> bool,
    mut attempt: impl FnMut() -> Fut,
) -> Result<T, E>
where
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + limit;
    let mut backoff = Backoff::new(Duration::from_millis(500));
    loop {
        match attempt().await {
            Err(e) if is_transient(&e) => {
                let delay = backoff.next_delay();
                if Instant::now() + delay >= deadline {
                    return Err(e);
                }
                tokio::time::sleep(delay).await;
            }
            done => return done,
        }
    }
}

/// Runs `attempt` until it succeeds or fails in a way waiting cannot fix, waiting with
/// backoff (at most `cap`) in between. Logs the first failure (`{what}: ...; retrying until
/// it answers`) and the recovery, not every attempt: an outage is two lines in the log.
pub async fn retry_until<T, E, Fut>(
    what: &str,
    cap: Duration,
    is_transient: impl Fn(&E) -> bool,
    mut attempt: impl FnMut() -> Fut,
) -> Result<T, E>
where
    E: Display,
    Fut: Future<Output = Result<T, E>>,
{
    let mut backoff = Backoff::new(cap);
    let mut failing = false;
    loop {
        match attempt().await {
            Err(e) if is_transient(&e) => {
                if !failing {
                    warn!("{what}: {e}; retrying until it answers");
                    failing = true;
                }
                tokio::time::sleep(backoff.next_delay()).await;
            }
            done => {
                if failing && done.is_ok() {
                    info!("{what}: etcd answers again");
                }
                return done;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_jitter_and_resets() {
        let cap = Duration::from_secs(1);
        let mut b = Backoff::new(cap);
        let delays: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
        assert!(delays[0] <= FIRST && delays[0] >= FIRST / 2);
        assert!(delays.iter().all(|d| *d <= cap));
        assert!(delays[9] >= cap / 2);
        b.reset();
        assert!(b.next_delay() <= FIRST);
    }

    #[tokio::test]
    async fn retries_transient_failures_until_success_but_not_permanent_ones() {
        let mut tries = 0;
        let ok: Result<u32, &str> = retry_within(
            Duration::from_secs(5),
            |e| *e == "down",
            || {
                tries += 1;
                let result = if tries < 3 { Err("down") } else { Ok(tries) };
                async move { result }
            },
        )
        .await;
        assert_eq!(ok, Ok(3));

        let mut tries = 0;
        let denied: Result<(), &str> = retry_within(
            Duration::from_secs(5),
            |e| *e == "down",
            || {
                tries += 1;
                async { Err("denied") }
            },
        )
        .await;
        assert_eq!((denied, tries), (Err("denied"), 1));
    }

    /// On tokio's paused clock, so the bound is exact whatever the machine's speed.
    #[tokio::test(start_paused = true)]
    async fn gives_up_at_the_limit() {
        let limit = Duration::from_millis(200);
        let started = Instant::now();
        let mut tries = 0;
        let result: Result<(), &str> = retry_within(
            limit,
            |_| true,
            || {
                tries += 1;
                async { Err("down") }
            },
        )
        .await;
        assert_eq!(result, Err("down"));
        assert!(tries > 1, "retried within the limit");
        assert!(started.elapsed() < limit, "{:?}", started.elapsed());
    }
}
