//! The waits between retries, shared by the queue, ARM and Slack clients: [`Backoff`]
//! (exponential, capped, optionally jittered) and [`retry_after`] (the server's own ask).

use reqwest::header::{HeaderMap, RETRY_AFTER};
use std::hash::BuildHasher;
use std::time::Duration;

/// Exponential backoff: `first`, doubling with each retry, capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Wait before the first retry.
    pub first: Duration,
    /// Cap on one wait.
    pub max: Duration,
    /// Shorten each wait by a random part of up to half ("equal jitter"), so that clients that
    /// failed together do not retry in step.
    pub jitter: bool,
}

impl Backoff {
    /// The wait before retry number `retry` (0 for the first), jitter left out.
    pub fn full(&self, retry: u32) -> Duration {
        self.first.saturating_mul(1 << retry.min(16)).min(self.max)
    }

    /// The wait before retry number `retry` (0 for the first): between half and all of
    /// [`Backoff::full`] with jitter, else all of it.
    pub fn wait(&self, retry: u32) -> Duration {
        let full = self.full(retry);
        if !self.jitter {
            return full;
        }
        full.saturating_sub(full.mul_f64(random_fraction() / 2.0))
    }
}

/// A random number in `[0, 1)`: std's `RandomState` is seeded randomly per instance.
fn random_fraction() -> f64 {
    let random = std::hash::RandomState::new().hash_one(0u8) % 1_000_000;
    random as f64 / 1_000_000.0
}

/// The longest `Retry-After` [`retry_after`] gives: a larger value is the server's wish, not a
/// promise to keep, and one near `u64::MAX` seconds would overflow an `Instant`.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// A `Retry-After` header in seconds (what ARM and Slack send), if there is a readable one, at
/// most [`MAX_RETRY_AFTER`]. Callers may cap it further.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(|seconds| Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_with_jitter_inside_half() {
        let b = Backoff {
            first: Duration::from_millis(100),
            max: Duration::from_secs(1),
            jitter: true,
        };
        for retry in 0..40 {
            let full = Duration::from_millis(100 * 2u64.pow(retry.min(10))).min(b.max);
            assert_eq!(b.full(retry), full);
            let wait = b.wait(retry);
            assert!(wait <= full && wait >= full / 2, "{retry}: {wait:?}");
        }
        let steady = Backoff { jitter: false, ..b };
        assert_eq!(steady.wait(2), Duration::from_millis(400));
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER, " 18446744073709551615 ".parse().unwrap());
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }
}
