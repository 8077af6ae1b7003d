//! The one way reconfig retries: capped exponential backoff with jitter (many daemons
//! retrying in lock-step would hammer a recovering cluster), against etcd either within a
//! time limit (one-shot commands) or until etcd answers (the daemon and dispense). The
//! watch loop paces its reconnects with the same [`Backoff`], and the daemon and dispense
//! their retries of a change that could not be applied.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;
use tracing::{info, warn};

/// Delays of 50 ms doubling up to [`CAP`], each randomly shortened by up to half, with a
/// few attempts at once before each: a connection to an endpoint answers the first request
/// after an outage with the error of its last attempt during the outage, so with `quick`
/// endpoints that many stale errors must be gone through before an attempt can tell.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    cap: Duration,
    next: Duration,
    /// Attempts at once before each delay.
    quick: usize,
    /// Attempts at once left before the next delay.
    left: usize,
}

const FIRST: Duration = Duration::from_millis(50);

/// The longest wait between two attempts. A second: once etcd is back, every daemon of a
/// fleet is back within about a second, arriving spread over that second (the jitter),
/// while a cluster that is down sees about one attempt a second from each.
pub const CAP: Duration = Duration::from_secs(1);

impl Backoff {
    /// Starts at 50 ms, with `quick` attempts at once before each delay (the number of
    /// endpoints of a connection that outlives its failures; 0 for a fresh connection at
    /// every attempt).
    pub fn new(quick: usize) -> Self {
        Backoff {
            first: FIRST,
            cap: CAP,
            next: FIRST,
            quick,
            left: quick,
        }
    }

    /// Starts at `first`, doubling up to `cap`, no attempt at once.
    pub fn between(first: Duration, cap: Duration) -> Self {
        Backoff {
            first,
            cap: cap.max(first),
            next: first,
            quick: 0,
            left: 0,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        if self.left > 0 {
            self.left -= 1;
            return Duration::ZERO;
        }
        self.left = self.quick;
        let full = self.next;
        self.next = (self.next * 2).min(self.cap);
        let jitter = rand::rng().random_range(0.5..=1.0);
        full.mul_f64(jitter)
    }

    /// Back to the shortest delay, after a success.
    pub fn reset(&mut self) {
        self.next = self.first;
        self.left = self.quick;
    }
}

/// Waits until `time`; for ever when there is none (a retry not scheduled). The timer is
/// boxed: waiting with no retry scheduled is how idle tasks spend their life, and each
/// would otherwise carry room for one.
pub async fn until(time: Option<Instant>) {
    match time {
        Some(time) => Box::pin(tokio::time::sleep_until(time)).await,
        None => std::future::pending().await,
    }
}

/// Runs `attempt` until it succeeds, fails for good, or the next try would start after
/// `limit` from now, pacing attempts with a [`Backoff`] of `quick` attempts at once. For one-shot commands against a cluster: a request that happened to
/// go to a member that is down is tried again instead of failing the whole run.
pub async fn retry_within<T, E, Fut>(
    limit: Duration,
    quick: usize,
    is_transient: impl Fn(&E) -> bool,
    mut attempt: impl FnMut() -> Fut,
) -> Result<T, E>
where
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + limit;
    let mut backoff = Backoff::new(quick);
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

/// Runs `attempt` until it succeeds or fails in a way waiting cannot fix, waiting with a
/// [`Backoff`] of `quick` attempts at once in between. Logs the first failure (`{what}: ...; retrying until
/// it answers`) and the recovery, not every attempt: an outage is two lines in the log.
pub async fn retry_until<T, E, Fut>(
    what: &str,
    quick: usize,
    is_transient: impl Fn(&E) -> bool,
    mut attempt: impl FnMut() -> Fut,
) -> Result<T, E>
where
    E: Display,
    Fut: Future<Output = Result<T, E>>,
{
    let mut backoff = Backoff::new(quick);
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
        let mut b = Backoff::new(0);
        let delays: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
        assert!(delays[0] <= FIRST && delays[0] >= FIRST / 2);
        assert!(delays.iter().all(|d| *d <= CAP));
        assert!(delays[9] >= CAP / 2);
        b.reset();
        assert!(b.next_delay() <= FIRST);
    }

    #[test]
    fn a_backoff_between_two_delays_stays_between_them() {
        let (first, cap) = (Duration::from_secs(1), Duration::from_secs(30));
        let mut b = Backoff::between(first, cap);
        let delays: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
        assert!(delays[0] <= first && delays[0] >= first / 2);
        assert!(delays.iter().all(|d| *d <= cap));
        assert!(delays[9] >= cap / 2);
    }

    #[test]
    fn quick_attempts_come_before_every_delay() {
        let mut b = Backoff::new(2);
        let delays: Vec<bool> = (0..7).map(|_| b.next_delay().is_zero()).collect();
        assert_eq!(delays, [true, true, false, true, true, false, true]);
    }

    #[tokio::test]
    async fn retries_transient_failures_until_success_but_not_permanent_ones() {
        let mut tries = 0;
        let ok: Result<u32, &str> = retry_within(
            Duration::from_secs(5),
            0,
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
            0,
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
            0,
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
