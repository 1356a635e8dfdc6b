//! How transient ARM failures are retried: the [`RetryPolicy`] and its backoff.

use chatops_shared::backoff::Backoff;
use std::time::Duration;

/// How the client retries transient failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first one included.
    pub attempts: u32,
    /// Wait before the first retry; doubles with each retry, with jitter.
    pub initial_backoff: Duration,
    /// Longest backoff between two tries.
    pub max_backoff: Duration,
    /// Longest `Retry-After` honoured (ARM asks for seconds; a bigger ask is capped).
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0 for the first), with "equal jitter": somewhere
    /// between half and all of the exponential backoff, so runners do not retry in step.
    pub(super) fn backoff(&self, retry: u32) -> Duration {
        Backoff {
            first: self.initial_backoff,
            max: self.max_backoff,
            jitter: true,
        }
        .wait(retry)
    }

    /// The wait before retry number `retry` after an answer that asked for `retry_after`: what
    /// it asked (capped, and at least a second: `Retry-After: 0` would send it again at once,
    /// and every runner with it), else the backoff.
    pub(super) fn wait(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(asked) => asked.min(self.max_retry_after).max(MIN_RETRY_AFTER),
            None => self.backoff(retry),
        }
    }
}

/// The shortest wait on a `Retry-After`.
pub(super) const MIN_RETRY_AFTER: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_a_cap() {
        let policy = RetryPolicy::default();
        for retry in 0..8 {
            let full = Duration::from_millis(500 * 2u64.pow(retry)).min(policy.max_backoff);
            let wait = policy.backoff(retry);
            assert!(wait >= full / 2 && wait <= full, "{retry}: {wait:?}");
        }
    }

    #[test]
    fn retry_after_is_honoured_within_bounds() {
        let policy = RetryPolicy::default();
        let asked = |secs| policy.wait(3, Some(Duration::from_secs(secs)));
        assert_eq!(asked(7), Duration::from_secs(7));
        assert_eq!(asked(0), MIN_RETRY_AFTER, "not again at once");
        assert_eq!(asked(3600), policy.max_retry_after);
        let backoff = policy.wait(0, None);
        assert!(backoff <= policy.initial_backoff, "{backoff:?}");
    }
}
