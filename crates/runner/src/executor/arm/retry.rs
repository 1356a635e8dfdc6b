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
}

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
}
