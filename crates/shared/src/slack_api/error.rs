//! What a Web API call can end in. No variant carries the token or a URL with a credential.

use std::time::Duration;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SlackApiError {
    /// Slack answered `ok: false` with this error code (`channel_not_found`,
    /// `message_not_found`, `not_in_channel`, `expired_trigger_id`, …).
    #[error("Slack refused {method}: {error}")]
    Slack { method: String, error: String },
    /// Slack asked to wait (429) longer than the caller's deadline allows.
    #[error("Slack rate-limited {method} for {retry_after:?}, past the deadline")]
    RateLimited {
        method: String,
        retry_after: Duration,
    },
    /// No usable answer before the deadline (timeouts, lost connections, 5xx).
    #[error("Slack did not answer {method} in time: {reason}")]
    Deadline { method: String, reason: String },
    /// An HTTP status Slack does not use for `ok: false` (e.g. 404 for an unknown base URL).
    #[error("Slack answered {method} with HTTP {status}")]
    Status { method: String, status: u16 },
    /// The answer was not Slack's JSON.
    #[error("Slack's answer to {0} was not the expected JSON")]
    BadAnswer(String),
    /// The HTTP client could not be built.
    #[error("the Slack HTTP client could not be built: {0}")]
    Client(String),
}

impl SlackApiError {
    pub(super) fn deadline(method: &str, reason: &str) -> Self {
        SlackApiError::Deadline {
            method: method.to_string(),
            reason: reason.to_string(),
        }
    }

    /// Slack's error code, for an `ok: false` answer.
    pub fn code(&self) -> Option<&str> {
        match self {
            SlackApiError::Slack { error, .. } => Some(error),
            _ => None,
        }
    }

    /// Whether asking again later may succeed (rate limits, outages), as opposed to Slack's
    /// considered refusal.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SlackApiError::RateLimited { .. } | SlackApiError::Deadline { .. }
        ) || matches!(self, SlackApiError::Status { status, .. } if *status >= 500)
            || matches!(
                self.code(),
                Some(
                    "ratelimited"
                        | "internal_error"
                        | "fatal_error"
                        | "service_unavailable"
                        | "request_timeout"
                )
            )
    }
}
