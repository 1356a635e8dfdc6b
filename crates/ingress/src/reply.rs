//! Every answer the ingress gives, and the one place errors become HTTP responses.
//!
//! User mistakes are HTTP 200 with an ephemeral message (only the caller sees it), as Slack
//! asks. Requests that did not come from Slack get a short plain-text 4xx. Internal details are
//! logged by the handler, never returned.

use crate::slack::form::MissingField;
use crate::slack::verify::VerifyError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A message for Slack to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reply {
    pub response_type: ResponseType,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseType {
    /// Only the caller sees it.
    Ephemeral,
    /// Everyone in the channel sees the command and the reply.
    InChannel,
}

impl Reply {
    pub fn ephemeral(text: impl Into<String>) -> Self {
        Reply {
            response_type: ResponseType::Ephemeral,
            text: text.into(),
        }
    }

    pub fn in_channel(text: impl Into<String>) -> Self {
        Reply {
            response_type: ResponseType::InChannel,
            text: text.into(),
        }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        Json(self).into_response()
    }
}

/// Requests refused before they reach the command logic.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("{0}")]
    Unauthorized(#[from] VerifyError),
    #[error("{0}")]
    BadRequest(#[from] MissingField),
}

impl IntoResponse for RequestError {
    fn into_response(self) -> Response {
        let status = match self {
            RequestError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            RequestError::BadRequest(_) => StatusCode::BAD_REQUEST,
        };
        tracing::info!(status = status.as_u16(), reason = %self, "request refused");
        (status, self.to_string()).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_serializes_as_slack_expects() {
        let v = serde_json::to_value(Reply::ephemeral("hi")).unwrap_or_default();
        assert_eq!(
            v,
            serde_json::json!({"response_type": "ephemeral", "text": "hi"})
        );
    }
}
