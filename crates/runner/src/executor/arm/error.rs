//! [`ArmError`], and reading ARM's error bodies into it.

use chatops_shared::secret::redact_url_secrets;
use reqwest::StatusCode;
use serde_json::Value;

/// Longest error message kept from an ARM answer.
const MAX_MESSAGE_CHARS: usize = 600;

/// What ARM said, in the user's terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArmError {
    /// ARM answered with an error status. `code` and `message` come from its error body.
    #[error("{code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
        /// The answer's `Retry-After`, on a 429 or 503 that had one.
        retry_after: Option<std::time::Duration>,
    },
    /// No answer: connection refused, reset, timed out.
    #[error("could not reach Azure Resource Manager: {0}")]
    Network(String),
    #[error("could not get an Azure token: {0}")]
    Token(String),
    /// A success answer that is not what the API promises.
    #[error("Azure Resource Manager sent an answer this runner does not understand: {0}")]
    Unexpected(String),
    /// The client could not be set up.
    #[error("could not set up the Azure Resource Manager client: {0}")]
    Setup(String),
}

impl ArmError {
    /// Worth trying again later: network, timeouts, token errors, 5xx and 429.
    pub fn is_transient(&self) -> bool {
        match self {
            ArmError::Api { status, .. } => *status == 429 || *status == 408 || *status >= 500,
            ArmError::Network(_) | ArmError::Token(_) => true,
            ArmError::Unexpected(_) | ArmError::Setup(_) => false,
        }
    }

    /// The HTTP status of an [`ArmError::Api`].
    pub fn status(&self) -> Option<u16> {
        match self {
            ArmError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// How long ARM asked to wait before trying again (`Retry-After` of a 429 or 503).
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            ArmError::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// This error with the `Retry-After` its answer carried (kept by [`ArmError::Api`] only).
    pub(super) fn with_retry_after(mut self, wait: Option<std::time::Duration>) -> Self {
        if let ArmError::Api { retry_after, .. } = &mut self {
            *retry_after = wait;
        }
        self
    }

    /// A PUT for a job name that exists is refused: HTTP 409, or an error saying so.
    pub(super) fn means_already_exists(&self) -> bool {
        match self {
            ArmError::Api {
                status,
                code,
                message,
                ..
            } => {
                *status == 409
                    || code.eq_ignore_ascii_case("Conflict")
                    || code.eq_ignore_ascii_case("JobAlreadyExists")
                    || message.to_ascii_lowercase().contains("already exists")
            }
            _ => false,
        }
    }

    /// Reads either error body shape: ARM's `{"error":{"code","message"}}` or Automation's flat
    /// `{"code","message"}` (whose message is sometimes itself a JSON `{"Message":…}`).
    pub(super) fn from_answer(status: StatusCode, body: &[u8]) -> Self {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let detail = parsed
            .as_ref()
            .map(|v| v.get("error").filter(|e| e.is_object()).unwrap_or(v));
        let field = |names: [&str; 2]| {
            detail.and_then(|d| {
                names
                    .iter()
                    .find_map(|n| d.get(*n).and_then(Value::as_str))
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
            })
        };
        let code = field(["code", "Code"]).unwrap_or_else(|| {
            status.canonical_reason().map_or_else(
                || format!("HTTP{}", status.as_u16()),
                |r| r.replace(' ', ""),
            )
        });
        let message = field(["message", "Message"])
            .map(|m| unwrap_nested_message(&m))
            .unwrap_or_else(|| format!("HTTP {} without error details", status.as_u16()));
        ArmError::Api {
            status: status.as_u16(),
            code,
            message: shorten(&redact_url_secrets(&message)),
            retry_after: None,
        }
    }
}

/// Automation sometimes wraps its message as a JSON string: `"{\"Message\":\"…\"}"`.
fn unwrap_nested_message(message: &str) -> String {
    serde_json::from_str::<Value>(message)
        .ok()
        .and_then(|v| {
            ["Message", "message"]
                .iter()
                .find_map(|k| v.get(*k).and_then(Value::as_str).map(str::to_owned))
        })
        .unwrap_or_else(|| message.to_owned())
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= MAX_MESSAGE_CHARS {
        text.to_owned()
    } else {
        let head: String = text.chars().take(MAX_MESSAGE_CHARS).collect();
        format!("{head}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_error_shapes() {
        let envelope =
            br#"{"error":{"code":"AuthorizationFailed","message":"no access","details":[]}}"#;
        assert_eq!(
            ArmError::from_answer(StatusCode::FORBIDDEN, envelope),
            ArmError::Api {
                status: 403,
                code: "AuthorizationFailed".into(),
                message: "no access".into(),
                retry_after: None,
            }
        );
        let flat =
            br#"{"code":"NotFound","message":"{\"Message\":\"The runbook was not found.\"}"}"#;
        let e = ArmError::from_answer(StatusCode::NOT_FOUND, flat);
        assert_eq!(e.to_string(), "NotFound: The runbook was not found.");
        assert!(!e.is_transient());
        let html = ArmError::from_answer(StatusCode::BAD_GATEWAY, b"<html>gateway</html>");
        assert_eq!(
            html.to_string(),
            "BadGateway: HTTP 502 without error details"
        );
        assert!(html.is_transient());
    }

    #[test]
    fn recognises_an_existing_job() {
        let conflict = ArmError::from_answer(StatusCode::CONFLICT, b"{}");
        assert!(conflict.means_already_exists());
        let bad = br#"{"code":"BadRequest","message":"Job with specified id already exists."}"#;
        assert!(ArmError::from_answer(StatusCode::BAD_REQUEST, bad).means_already_exists());
        assert!(!ArmError::from_answer(StatusCode::BAD_REQUEST, b"{}").means_already_exists());
    }
}
