//! Every answer the ingress gives, and the one place errors become HTTP responses.
//!
//! User mistakes are HTTP 200 with an ephemeral message (only the caller sees it), as Slack
//! asks: a handler returns a [`Refusal`] and [`Reply::from`] writes its text. Requests that did
//! not come from Slack get a short plain-text 4xx ([`RequestError`]). Internal details are
//! logged by the handler, never returned.

use crate::slack::form::MissingField;
use crate::slack::verify::VerifyError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chatops_shared::catalog::Rejection;
use chatops_shared::command::CommandError;
use chatops_shared::job::{self, JobMessage};
use chatops_shared::mrkdwn::{escape, inline_code};
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

    /// The help text (plain text from the catalog), for the caller only.
    pub fn help(text: &str) -> Self {
        Reply::ephemeral(escape(text))
    }

    /// The in-channel answer to a queued job: who started which runbook with which parameters.
    pub fn acknowledgement(message: &JobMessage) -> Self {
        let with = if message.params.is_empty() {
            String::new()
        } else {
            format!(
                " `{}`",
                escape(&inline_code(&job::format_params(&message.shown_params())))
            )
        };
        let rerun = message
            .rerun_of
            .map(|original| format!(", rerun of `{}`", job::short_id(&original)))
            .unwrap_or_default();
        Reply::in_channel(format!(
            ":inbox_tray: <@{}> queued *{}*{} (job `{}`{rerun})",
            escape(&message.user_id),
            escape(&message.runbook),
            with,
            message.short_id()
        ))
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        Json(self).into_response()
    }
}

/// Why a verified command gets no job. Each becomes one ephemeral answer, in [`Reply::from`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A form field we read is not valid UTF-8 (a lossy decoding would run something else).
    NotUtf8 { field: String },
    /// The text could not be split into words. `command` is the slash command, e.g. `/runbook`.
    Unparsable {
        error: CommandError,
        command: String,
    },
    /// The catalog refused the command.
    Rejected {
        rejection: Rejection,
        command: String,
    },
    /// The queue did not take the job; `text` is the command's text as typed.
    QueueDown { text: String },
}

impl Refusal {
    /// What the caller is told, as plain text (escaped when it becomes a [`Reply`]); also the
    /// reason the audit log records.
    pub fn text(&self) -> String {
        match self {
            Refusal::NotUtf8 { field } => format!(
                "Could not read the command: it is not valid UTF-8 (the `{}` field holds bytes that are not text). Nothing was started. Type the command again, or paste it as plain text.",
                inline_code(field)
            ),
            Refusal::Unparsable { error, command } => {
                format!("{error}\n{}", general_usage(command))
            }
            Refusal::Rejected { rejection, command } => rejection_text(rejection.clone(), command),
            Refusal::QueueDown { text } => format!(
                ":warning: Could not queue `{}` right now: the job queue did not answer. Nothing was started. Please try again in a minute.",
                inline_code(text)
            ),
        }
    }
}

impl From<Refusal> for Reply {
    fn from(refusal: Refusal) -> Self {
        Reply::ephemeral(escape(&refusal.text()))
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        Reply::from(self).into_response()
    }
}

/// What a rejected command gets: what is wrong, and the usage that fixes it (the runbook's
/// own, or the command's general usage where there is no runbook to show).
fn rejection_text(rejection: Rejection, command: &str) -> String {
    let general = matches!(
        rejection,
        Rejection::UnknownRunbook { .. }
            | Rejection::NotAllowed { .. }
            | Rejection::WrongChannel { .. }
            | Rejection::NotYetAvailable { .. }
            | Rejection::HiddenCharacterInName { .. }
    );
    let text = rejection.with_command(command).to_string();
    if general {
        format!("{text}\n{}", general_usage(command))
    } else {
        text
    }
}

/// The command language in one line.
fn general_usage(command: &str) -> String {
    format!(
        "Usage: `{command} <runbook> [value…] [name=value…]`; `{command} help` lists what you can run."
    )
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

    #[test]
    fn every_refusal_is_ephemeral_and_escaped() {
        let refusals = [
            Refusal::NotUtf8 {
                field: "text".into(),
            },
            Refusal::Unparsable {
                error: CommandError::TrailingBackslash,
                command: "/runbook".into(),
            },
            Refusal::Rejected {
                rejection: Rejection::NotYetAvailable {
                    word: "<!channel>".into(),
                },
                command: "/runbook".into(),
            },
            Refusal::QueueDown {
                text: "echo <!channel> `x`".into(),
            },
        ];
        for refusal in refusals {
            let reply = Reply::from(refusal.clone());
            assert_eq!(reply.response_type, ResponseType::Ephemeral, "{refusal:?}");
            assert!(!reply.text.contains('<'), "{refusal:?}: {}", reply.text);
        }
        let text = Reply::from(Refusal::QueueDown {
            text: "echo `x`".into(),
        })
        .text;
        assert!(text.contains("Could not queue `echo 'x'`"), "{text}");
    }
}
