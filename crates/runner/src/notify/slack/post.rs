//! One post to Slack: waiting out 429s as Slack asks (per path, across jobs), retrying network
//! errors and 5xx with the shared backoff, within one call's [`WaitBudget`]; Slack's answer is
//! read only as far as [`MAX_ANSWER_BYTES`].

use super::SlackNotifier;
use super::answer::{Path, PostError, classify, describe};
use chatops_shared::backoff::{Backoff, retry_after};
use chatops_shared::body::read_head;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;
use std::sync::PoisonError;
use std::time::Duration;
use uuid::Uuid;

/// Tries of one post while Slack answers 429.
const MAX_RATE_LIMITED_TRIES: u32 = 3;
/// Waiting allowed in one `notify` call (Retry-After and backoff together).
const MAX_WAIT: Duration = Duration::from_secs(60);
/// Retries of a post that met a network error or a 5xx.
const MAX_FAILED_RETRIES: u32 = 2;
/// Waits before those retries: 250 ms, then 500 ms.
const BACKOFF: Backoff = Backoff {
    first: Duration::from_millis(250),
    max: Duration::from_millis(750),
    jitter: false,
};
/// When Slack answers 429 without a usable Retry-After.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
/// The longest `Retry-After` taken at its word: a larger value (or a hostile one) is capped.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// The most of an answer read: Slack answers `ok` or a short JSON object.
const MAX_ANSWER_BYTES: usize = 4096;

/// Waiting left in one `notify` call.
pub(super) struct WaitBudget {
    left: Duration,
}

impl WaitBudget {
    pub(super) fn new() -> Self {
        WaitBudget { left: MAX_WAIT }
    }

    /// Takes `wait` from the budget; false (and nothing taken) when it does not fit.
    fn take(&mut self, wait: Duration) -> bool {
        match self.left.checked_sub(wait) {
            Some(left) => {
                self.left = left;
                true
            }
            None => false,
        }
    }
}

impl SlackNotifier {
    /// How long Slack asked us to wait before posting to this path again, if still waiting.
    fn held_for(&self, key: Option<Uuid>) -> Option<Duration> {
        let now = tokio::time::Instant::now();
        let held = self
            .not_before
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        held.get(&key)
            .filter(|until| **until > now)
            .map(|until| *until - now)
    }

    /// Remembers that Slack asked to wait `wait` before the next post to this path.
    fn hold(&self, key: Option<Uuid>, wait: Duration) {
        let now = tokio::time::Instant::now();
        let mut held = self
            .not_before
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        held.retain(|_, until| *until > now);
        // Keep the later of two waits: a shorter answer does not cancel a longer one.
        let until = now + wait;
        held.entry(key)
            .and_modify(|held_until| *held_until = (*held_until).max(until))
            .or_insert(until);
    }

    /// Posts `body`, waiting out 429s (as long as the budget allows) and retrying network
    /// errors and 5xx twice.
    pub(super) async fn post(
        &self,
        path: Path,
        key: Option<Uuid>,
        url: &str,
        body: &Value,
        budget: &mut WaitBudget,
    ) -> Result<(), PostError> {
        let mut rate_limited = 0;
        let mut failures = 0;
        loop {
            // Slack asked (maybe while posting for another job) to wait: do not post before then.
            // Checked again after each wait: another post may have been told to wait longer.
            while let Some(wait) = self.held_for(key) {
                let reason = format!(
                    "rate limited (Slack asked to wait {}s)",
                    wait.as_secs().max(1)
                );
                if !budget.take(wait) {
                    return Err(PostError::RateLimited { wait, reason });
                }
                tracing::info!(%path, %reason, "waiting before posting, as Slack asked");
                tokio::time::sleep(wait).await;
            }
            let sent = self.client.post(url).json(body).send().await;
            crate::metrics::slack_post(sent.as_ref().ok().map(|r| r.status().as_u16()));
            let reason = match sent {
                Ok(response) if response.status() == StatusCode::TOO_MANY_REQUESTS => {
                    rate_limited += 1;
                    let wait = wait_asked(response.headers());
                    self.hold(key, wait);
                    let reason = format!(
                        "rate limited (HTTP 429, Slack asked to wait {}s)",
                        wait.as_secs()
                    );
                    if rate_limited >= MAX_RATE_LIMITED_TRIES {
                        return Err(PostError::RateLimited { wait, reason });
                    }
                    // The wait happens at the top of the loop.
                    crate::metrics::retry("slack");
                    continue;
                }
                Ok(response) => {
                    let status = response.status();
                    // An answer cut short or unreadable reads as empty: the status decides.
                    let head = read_head(response, MAX_ANSWER_BYTES).await;
                    let text = head
                        .map(|h| String::from_utf8_lossy(&h.bytes).into_owned())
                        .unwrap_or_default();
                    match classify(path, status, &text) {
                        Err(PostError::Unavailable(reason)) => reason,
                        done => return done,
                    }
                }
                Err(e) => describe(&e),
            };
            if failures >= MAX_FAILED_RETRIES {
                return Err(PostError::Unavailable(reason));
            }
            let wait = BACKOFF.wait(failures);
            failures += 1;
            if !budget.take(wait) {
                return Err(PostError::Unavailable(reason));
            }
            tracing::info!(%path, %reason, wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX), "Slack post failed; trying again");
            crate::metrics::retry("slack");
            tokio::time::sleep(wait).await;
        }
    }
}

/// How long Slack asked to wait: `Retry-After` (capped), or a second without one; at least a
/// second (`Retry-After: 0` would have every post sent again at once).
fn wait_asked(headers: &HeaderMap) -> Duration {
    retry_after(headers)
        .map_or(DEFAULT_RETRY_AFTER, |d| d.min(MAX_RETRY_AFTER))
        .max(DEFAULT_RETRY_AFTER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::RETRY_AFTER;

    #[test]
    fn retry_after_is_capped_with_a_default() {
        let mut h = HeaderMap::new();
        assert_eq!(wait_asked(&h), DEFAULT_RETRY_AFTER);
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(wait_asked(&h), Duration::from_secs(7));
        h.insert(RETRY_AFTER, "18446744073709551615".parse().unwrap());
        assert_eq!(wait_asked(&h), MAX_RETRY_AFTER);
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(wait_asked(&h), DEFAULT_RETRY_AFTER);
        h.insert(RETRY_AFTER, "0".parse().unwrap());
        assert_eq!(wait_asked(&h), DEFAULT_RETRY_AFTER, "at least a second");
    }

    #[test]
    fn wait_budget_is_bounded() {
        let mut b = WaitBudget::new();
        assert!(b.take(Duration::from_secs(59)));
        assert!(!b.take(Duration::from_secs(2)));
        assert!(b.take(Duration::from_secs(1)));
    }
}
