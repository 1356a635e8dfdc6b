//! The `response_url` of a command: trusted only under the configured prefix, and used as
//! long as Slack accepts it (at most [`RESPONSE_URL_MAX_USES`] times, within
//! [`RESPONSE_URL_LIFETIME`]); after that, updates go to the webhook.

use super::SlackNotifier;
use chatops_shared::job::JobMessage;
use chatops_shared::secret::Secret;
use std::collections::HashMap;
use std::sync::PoisonError;
use time::OffsetDateTime;
use uuid::Uuid;

/// How long Slack accepts posts to a `response_url` after the command.
pub const RESPONSE_URL_LIFETIME: time::Duration = time::Duration::minutes(30);
/// How many posts Slack accepts on one `response_url`.
pub const RESPONSE_URL_MAX_USES: u32 = 5;

/// How one job's `response_url` has been used.
#[derive(Debug, Clone, Copy)]
pub(super) struct ResponseUrlUse {
    requested_at: OffsetDateTime,
    /// Posts Slack accepted.
    uses: u32,
    /// Slack refused it (expired, used up, revoked) or it is not a Slack URL.
    unusable: bool,
}

impl SlackNotifier {
    pub(super) fn uses(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, ResponseUrlUse>> {
        self.response_urls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The job's `response_url` when it may be posted to now.
    pub(super) fn usable_response_url<'a>(&self, job: &'a JobMessage) -> Option<&'a str> {
        let url = job.response_url.as_ref().map_or("", Secret::expose);
        if url.is_empty() {
            return None;
        }
        let now = OffsetDateTime::now_utc();
        if now - job.requested_at > RESPONSE_URL_LIFETIME {
            tracing::debug!(job_id = %job.job_id, "response_url has expired; using the webhook");
            return None;
        }
        let mut uses = self.uses();
        uses.retain(|_, u| now - u.requested_at <= RESPONSE_URL_LIFETIME);
        let entry = uses.entry(job.job_id).or_insert(ResponseUrlUse {
            requested_at: job.requested_at,
            uses: 0,
            unusable: false,
        });
        if entry.unusable || entry.uses >= RESPONSE_URL_MAX_USES {
            return None;
        }
        if !is_under_prefix(url, &self.response_url_prefix) {
            tracing::warn!(
                job_id = %job.job_id,
                "the job's response_url does not start with the configured Slack prefix; \
                 it is not contacted (was the queue message forged?)"
            );
            entry.unusable = true;
            return None;
        }
        Some(url)
    }

    pub(super) fn record(&self, job_id: Uuid, accepted: bool) {
        if let Some(entry) = self.uses().get_mut(&job_id) {
            if accepted {
                entry.uses += 1;
            } else {
                entry.unusable = true;
            }
        }
    }
}

/// Whether `url` is under `prefix`: same origin, and textually below it.
fn is_under_prefix(url: &str, prefix: &str) -> bool {
    let (Ok(parsed), Ok(base)) = (url::Url::parse(url), url::Url::parse(prefix)) else {
        return false;
    };
    url.starts_with(prefix)
        && parsed.origin() == base.origin()
        && parsed.username().is_empty()
        && parsed.password().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::slack::tests::{SLACK_URL, job, notifier};
    use crate::notify::slack::{DEFAULT_RESPONSE_URL_PREFIX, config::with_trailing_slash};

    #[test]
    fn only_urls_under_the_prefix_are_trusted() {
        let p = DEFAULT_RESPONSE_URL_PREFIX;
        assert!(is_under_prefix(SLACK_URL, p));
        for forged in [
            "https://hooks.slack.com.evil.example/commands/x",
            "https://hooks.slack.com@evil.example/commands/x",
            "http://hooks.slack.com/commands/x",
            "https://evil.example/https://hooks.slack.com/",
            "https://hooks.slack.com:8443/commands/x",
            "not a url",
        ] {
            assert!(!is_under_prefix(forged, p), "{forged}");
        }
        assert_eq!(with_trailing_slash("https://hooks.slack.com"), p);
    }

    #[test]
    fn response_url_is_used_five_times_within_thirty_minutes() {
        let n = notifier(None);
        let fresh = job(SLACK_URL, time::Duration::minutes(29));
        for _ in 0..RESPONSE_URL_MAX_USES {
            assert_eq!(n.usable_response_url(&fresh), Some(SLACK_URL));
            n.record(fresh.job_id, true);
        }
        assert_eq!(n.usable_response_url(&fresh), None);

        assert_eq!(
            n.usable_response_url(&job(SLACK_URL, time::Duration::minutes(31))),
            None
        );
        assert_eq!(n.usable_response_url(&job("", time::Duration::ZERO)), None);
        assert_eq!(
            n.usable_response_url(&job("https://evil.example/x", time::Duration::ZERO)),
            None
        );

        let refused = job(SLACK_URL, time::Duration::ZERO);
        assert!(n.usable_response_url(&refused).is_some());
        n.record(refused.job_id, false);
        assert_eq!(n.usable_response_url(&refused), None);
    }
}
