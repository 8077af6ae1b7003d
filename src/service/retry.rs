//! How the long-running modes retry a change they could not apply (a file that could not be
//! written, a check that failed) and a reload that failed: from the same snapshot, after
//! about [`Pacing::first`], doubling to [`Pacing::cap`] with jitter, until it succeeds or a
//! newer change takes its place.

use std::fmt;
use std::time::Duration;

use crate::etcd::Backoff;

/// The pacing of retries (`--retry-first`, `--retry-cap`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    /// The first retry comes after about this long.
    pub first: Duration,
    /// Retries of what keeps failing come at least this often.
    pub cap: Duration,
}

impl Default for Pacing {
    fn default() -> Pacing {
        Pacing {
            first: Duration::from_secs(1),
            cap: Duration::from_secs(30),
        }
    }
}

impl Pacing {
    /// The backoff of one follower's (or one reload task's) retries.
    pub fn backoff(&self) -> Backoff {
        Backoff::between(self.first, self.cap)
    }
}

/// A retry's delay as a log line says it: `retrying in 1s 250ms`.
pub fn retrying_in(delay: Duration) -> impl fmt::Display {
    let millis = Duration::from_millis(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
    RetryingIn(millis)
}

struct RetryingIn(Duration);

impl fmt::Display for RetryingIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "retrying in {}", humantime::format_duration(self.0))
    }
}
