//! [`RetryBudget`]: how long one queue operation may take in all, and how long to wait between
//! its tries.
//!
//! The SDK's retry policy is off (by default one refused connection takes over a minute to come
//! back as an error); [`AzureJobQueue`](super::azure::AzureJobQueue) runs every call in its own
//! loop, bounded by a budget. The ingress uses [`RetryBudget::interactive`] to answer Slack
//! within 3 s; the runner [`RetryBudget::background`].

use crate::backoff::Backoff;
use std::time::Duration;

/// How long one queue operation may take in all: tries, per-try timeout, waits between tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryBudget {
    /// Tries in all, the first included (at least one is made).
    pub attempts: u32,
    /// Limit on one try: connecting, sending, and reading the answer.
    pub per_try_timeout: Duration,
    /// Limit on the whole operation, tries and waits: a try gets at most what is left, and no
    /// try starts once it is spent. `None`: only `attempts` bounds it.
    pub total: Option<Duration>,
    /// Wait before the second try; it doubles before each further one.
    pub first_backoff: Duration,
    /// Cap on one wait.
    pub max_backoff: Duration,
    /// Shorten each wait by a random part of up to half, so that many runners that failed
    /// together do not retry in step.
    pub jitter: bool,
}

impl RetryBudget {
    /// For the ingress, which must answer Slack within 3 s: 2.1 s in all, up to 3 tries of at
    /// most 1 s, waits of 100 ms then 200 ms. A refused connection is tried three times; a
    /// silent one twice.
    ///
    /// The first try gets a whole second because a try cut short is usually one the queue was
    /// still working on: under load (answers slower than the limit) short tries turned into
    /// duplicate messages and extra load, which made the queue slower still (the 600 ms tries
    /// this replaced queued 31 % duplicates and failed 15 % of commands at 32 connections; see
    /// docs/benchmarks.md).
    pub fn interactive() -> Self {
        RetryBudget {
            attempts: 3,
            per_try_timeout: Duration::from_millis(1000),
            total: Some(Duration::from_millis(2100)),
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(200),
            jitter: false,
        }
    }

    /// For the runner: 4 tries of at most 4 s, waits from 200 ms doubling with jitter, capped
    /// at 5 s; 17.4 s at worst, short enough that a failing visibility extension is retried
    /// in time (see the runner's `worker::MIN_VISIBILITY`).
    pub fn background() -> Self {
        RetryBudget {
            attempts: 4,
            per_try_timeout: Duration::from_secs(4),
            total: None,
            first_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            jitter: true,
        }
    }

    /// For an operator's command (`chatops-runner output`, `audit`): 3 tries of at most 2 min,
    /// waits of 1 s then 2 s. A try includes reading the answer: the whole kept output of a
    /// job (10 MiB by default) or a day's audit log, over the operator's link.
    pub fn operator() -> Self {
        RetryBudget {
            attempts: 3,
            per_try_timeout: Duration::from_secs(120),
            total: None,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(2),
            jitter: false,
        }
    }

    /// The wait after failed try number `failed_try` (1-based).
    pub fn backoff(&self, failed_try: u32) -> Duration {
        Backoff {
            first: self.first_backoff,
            max: self.max_backoff,
            jitter: self.jitter,
        }
        .wait(failed_try.saturating_sub(1))
    }

    /// The longest one operation can take: every try times out and every wait is full (or
    /// `total`, when that is shorter).
    pub fn worst_case(&self) -> Duration {
        let all = self.without_total();
        self.total.map_or(all, |total| all.min(total))
    }

    fn without_total(&self) -> Duration {
        let attempts = self.attempts.max(1);
        let waits: Duration = (1..attempts)
            .map(|n| {
                RetryBudget {
                    jitter: false,
                    ..*self
                }
                .backoff(n)
            })
            .sum();
        self.per_try_timeout.saturating_mul(attempts) + waits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interactive_budget_fits_slacks_three_seconds() {
        let b = RetryBudget::interactive();
        assert_eq!(b.backoff(1), Duration::from_millis(100));
        assert_eq!(b.backoff(2), Duration::from_millis(200));
        assert_eq!(b.worst_case(), Duration::from_millis(2100));
        // Two whole tries and the wait between them fit.
        assert!(b.per_try_timeout * 2 + b.backoff(1) <= b.worst_case());
    }

    #[test]
    fn an_operators_try_can_read_a_whole_kept_output_over_a_slow_link() {
        // The default kept output (10 MiB) at 1 Mbit/s: 84 s.
        let bits = 10.0 * 1024.0 * 1024.0 * 8.0;
        let needed = Duration::from_secs_f64(bits / 1_000_000.0);
        assert!(RetryBudget::operator().per_try_timeout > needed);
        assert!(
            RetryBudget::background().per_try_timeout < needed,
            "why it has its own"
        );
    }

    #[test]
    fn background_backoff_doubles_with_jitter_and_a_cap() {
        let b = RetryBudget::background();
        for n in 1..=10 {
            let full = Duration::from_millis(200 * (1 << (n - 1))).min(Duration::from_secs(5));
            let wait = b.backoff(n);
            assert!(
                wait <= full && wait >= full / 2,
                "try {n}: {wait:?} vs {full:?}"
            );
        }
        assert_eq!(
            b.worst_case(),
            Duration::from_millis(16_000 + 200 + 400 + 800)
        );
    }
}
