//! Capped exponential backoff with jitter, for every retry against etcd: many daemons
//! retrying in lock-step would hammer a recovering cluster.

use std::time::Duration;

use rand::Rng;

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
}
