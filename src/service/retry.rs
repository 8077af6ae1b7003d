//! How the long-running modes retry a change they could not apply (a file that could not be
//! written, a check that failed): from the same snapshot, after about [`FIRST`], doubling to
//! [`CAP`] with jitter, until it succeeds or a newer change takes its place.

use std::fmt;
use std::time::Duration;

use crate::etcd::Backoff;

/// The first retry comes after about this long.
pub const FIRST: Duration = Duration::from_secs(1);

/// Retries of a change that keeps failing come at least this often.
pub const CAP: Duration = Duration::from_secs(30);

/// The pacing of one follower's retries.
pub fn backoff() -> Backoff {
    Backoff::between(FIRST, CAP)
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
