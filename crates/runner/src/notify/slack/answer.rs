//! What a post to Slack came to: the [`Path`] it took, Slack's answer read as a [`PostError`]
//! or success, and network errors in words. Nothing here ever holds a URL.

use reqwest::StatusCode;
use serde_json::Value;
use std::fmt;
use std::time::Duration;

/// The two ways to reach Slack; the only way errors and logs name a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Path {
    ResponseUrl,
    Webhook,
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Path::ResponseUrl => "response_url",
            Path::Webhook => "webhook",
        })
    }
}

/// Why one post failed. The text never contains the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PostError {
    /// Slack said no (4xx other than 429, or a redirect): retrying will not help.
    Refused(String),
    /// Network or 5xx beyond our retries.
    Unavailable(String),
    /// Rate limited beyond what one call waits for: Slack asked to wait `wait` before the next try.
    RateLimited { wait: Duration, reason: String },
}

/// What Slack's answer means. Webhooks answer 200 `ok`; a `response_url` answers 200 and may
/// carry `{"ok": false, "error": …}`.
pub(super) fn classify(path: Path, status: StatusCode, body: &str) -> Result<(), PostError> {
    let code = slack_code(body);
    if status.is_success() {
        let refused = path == Path::ResponseUrl
            && serde_json::from_str::<Value>(body)
                .is_ok_and(|v| v.get("ok") == Some(&Value::Bool(false)));
        return if refused {
            Err(PostError::Refused(format!(
                "HTTP {} {code}",
                status.as_u16()
            )))
        } else {
            Ok(())
        };
    }
    let reason = format!("HTTP {} {code}", status.as_u16())
        .trim_end()
        .to_owned();
    if status.is_redirection() {
        Err(PostError::Refused(format!(
            "{reason} (redirects are not followed)"
        )))
    } else if status.is_client_error() {
        Err(PostError::Refused(reason))
    } else {
        Err(PostError::Unavailable(reason))
    }
}

/// Slack's short error code from an answer body (`channel_is_archived`, or the `error` of a
/// JSON answer): its first word, which cannot carry a URL.
fn slack_code(body: &str) -> String {
    let body = body.trim();
    let code = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| body.to_owned());
    code.trim()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect()
}

/// A network error in words, without its URL.
pub(super) fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else {
        format!("request failed: {}", clean(e))
    }
}

fn clean(e: &reqwest::Error) -> String {
    // reqwest's message ends in "for url (…)"; `without_url` would need ownership.
    let text = e.to_string();
    match e.url() {
        Some(url) => text.replace(url.as_str(), "[redacted]"),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified() {
        let ok = StatusCode::OK;
        assert_eq!(classify(Path::Webhook, ok, "ok"), Ok(()));
        assert_eq!(classify(Path::ResponseUrl, ok, r#"{"ok":true}"#), Ok(()));
        assert_eq!(
            classify(
                Path::ResponseUrl,
                ok,
                r#"{"ok":false,"error":"expired_url"}"#
            ),
            Err(PostError::Refused("HTTP 200 expired_url".into()))
        );
        assert_eq!(
            classify(Path::Webhook, StatusCode::GONE, "channel_is_archived"),
            Err(PostError::Refused("HTTP 410 channel_is_archived".into()))
        );
        assert_eq!(
            classify(
                Path::Webhook,
                StatusCode::INTERNAL_SERVER_ERROR,
                "rollup_error"
            ),
            Err(PostError::Unavailable("HTTP 500 rollup_error".into()))
        );
        assert!(matches!(
            classify(Path::Webhook, StatusCode::FOUND, ""),
            Err(PostError::Refused(_))
        ));
    }

    #[test]
    fn slack_codes_cannot_carry_urls() {
        assert_eq!(slack_code("  invalid_payload\n"), "invalid_payload");
        assert_eq!(slack_code(r#"{"ok":false,"error":"used_url"}"#), "used_url");
        assert_eq!(slack_code("see https://hooks.slack.com/x"), "see");
        assert_eq!(slack_code("https://hooks.slack.com/x"), "https");
        assert_eq!(slack_code("<html>"), "");
    }
}
