//! Every answer the ingress gives, and the one place errors become HTTP responses.
//!
//! User mistakes are HTTP 200 with an ephemeral message (only the caller sees it), as Slack
//! asks: a handler returns a [`Refusal`] and [`Reply::from`] writes its text. Requests that did
//! not come from Slack get a short plain-text 4xx ([`RequestError`]). Internal details are
//! logged by the handler, never returned.

use crate::slack::form::MissingField;
use crate::slack::interaction::InteractionError;
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
    /// The message, or with `blocks` its plain-text fallback (notifications, old clients).
    pub text: String,
    /// Block Kit layout, when the answer has one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<serde_json::Value>,
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
            blocks: Vec::new(),
        }
    }

    pub fn in_channel(text: impl Into<String>) -> Self {
        Reply {
            response_type: ResponseType::InChannel,
            text: text.into(),
            blocks: Vec::new(),
        }
    }

    /// The help text (plain text from the catalog), for the caller only: one Block Kit
    /// section per paragraph, with the text as the fallback (its start, when it is longer than
    /// Slack advises for one).
    pub fn help(text: &str) -> Self {
        let text = escape(text);
        let blocks = help_sections(&text)
            .into_iter()
            .map(|section| {
                serde_json::json!({
                    "type": "section",
                    "text": { "type": "mrkdwn", "text": section },
                })
            })
            .collect();
        Reply {
            blocks,
            ..Reply::ephemeral(crate::jobs::words::head(
                &text,
                crate::jobs::words::MAX_TEXT_CHARS,
            ))
        }
    }

    /// The in-channel answer to a queued job: who started which runbook with which parameters.
    pub fn acknowledgement(message: &JobMessage) -> Self {
        Reply::in_channel(Self::queued_text(message))
    }

    /// The answer to a queued job that holds a secret value, for its requester only: Slack
    /// shows the command as typed, secret included, above any in-channel answer to it.
    pub fn acknowledgement_to_requester(message: &JobMessage) -> Self {
        Reply::ephemeral(format!(
            "{}\nShown to you only, as its status will be: the command holds a secret value, and Slack shows a command as typed to everyone who sees an answer to it in the channel.",
            Self::queued_text(message)
        ))
    }

    /// `@user queued *runbook* `params` (job `id`)`, secret values masked.
    fn queued_text(message: &JobMessage) -> String {
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
        format!(
            ":inbox_tray: <@{}> queued *{}*{} (job `{}`{rerun})",
            escape(&message.user_id),
            escape(&message.runbook),
            with,
            message.short_id()
        )
    }
}

impl Reply {
    /// The answer to a queued job when the runner posts the job card itself (bot token): for
    /// the caller only, so that the channel gets one message per job.
    pub fn queued(message: &JobMessage) -> Self {
        Reply::ephemeral(format!(
            ":inbox_tray: Queued *{}* (job `{}`); its card will show in this channel.",
            escape(&message.runbook),
            message.short_id()
        ))
    }
}

/// Most characters of a section's text (Slack takes 3000).
const SECTION_MAX: usize = 2900;

/// Most blocks in one message: Slack refuses a message with more.
const MESSAGE_BLOCKS_MAX: usize = 50;

/// The text cut at blank lines and bullets into sections that fit [`SECTION_MAX`] (a longer
/// line is cut in characters), at most [`MESSAGE_BLOCKS_MAX`] of them: when there would be more
/// (a caller who may run dozens of runbooks), bullets share sections.
fn help_sections(text: &str) -> Vec<String> {
    fit_message(paragraphs(text))
}

fn paragraphs(text: &str) -> Vec<String> {
    let mut sections: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let starts_part = line.is_empty() || line.starts_with('•');
        if (starts_part || current.chars().count() + line.chars().count() >= SECTION_MAX)
            && !current.trim().is_empty()
        {
            sections.push(std::mem::take(&mut current));
        }
        if line.is_empty() {
            continue;
        }
        let mut rest: Vec<char> = line.chars().collect();
        while rest.len() > SECTION_MAX {
            sections.push(rest.drain(..SECTION_MAX).collect());
        }
        if !current.is_empty() {
            current.push('\n');
        }
        current.extend(rest);
    }
    if !current.trim().is_empty() {
        sections.push(current);
    }
    sections
}

/// `sections` in at most [`MESSAGE_BLOCKS_MAX`] sections: as they are when they fit, else
/// packed, each filled up to [`SECTION_MAX`]; a text too long even then ends in a note that it
/// was cut.
fn fit_message(sections: Vec<String>) -> Vec<String> {
    if sections.len() <= MESSAGE_BLOCKS_MAX {
        return sections;
    }
    let mut packed: Vec<String> = Vec::new();
    for section in sections {
        match packed.last_mut() {
            Some(last) if last.chars().count() + 1 + section.chars().count() <= SECTION_MAX => {
                last.push('\n');
                last.push_str(&section);
            }
            _ => packed.push(section),
        }
    }
    if packed.len() > MESSAGE_BLOCKS_MAX {
        packed.truncate(MESSAGE_BLOCKS_MAX - 1);
        packed.push(
            "… cut here: Slack shows no more in one message. Ask for `help <runbook>` for one runbook."
                .to_owned(),
        );
    }
    packed
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
    /// The queue did not confirm before the acknowledgement deadline (Slack stops waiting at
    /// 3 s); `text` is the command's text, secret values masked.
    OutOfTime { text: String },
    /// The job message would be longer than a queue message may be (`bytes`): values too long.
    TooLarge { bytes: usize },
    /// `--form` asked for a form, and this app has no bot token to open one.
    NoForms { usage: String },
    /// `--form` asked for a form, and Slack did not open it: the trigger expired or Slack was
    /// slow, or (`refused`, its error code) Slack refused the form itself, which asking again
    /// does not change.
    FormUnavailable {
        usage: String,
        refused: Option<String>,
    },
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
            Refusal::OutOfTime { text } => format!(
                ":warning: Could not confirm `{}` in time: the job queue was slow and Slack is waiting for an answer. If no job shows in this channel within a minute, please try again.",
                inline_code(text)
            ),
            Refusal::TooLarge { bytes } => format!(
                "Not run: its values are too long. They make a job message of {} KB, and a queued job holds at most {} KB. Shorten the longest values and run it again.",
                bytes.div_ceil(1024),
                chatops_shared::queue::MAX_MESSAGE_BYTES / 1024
            ),
            Refusal::NoForms { usage } => format!(
                "Forms are not available here (this app has no bot token). Type the values instead.\n```\n{usage}\n```"
            ),
            Refusal::FormUnavailable {
                usage,
                refused: None,
            } => format!(
                "Slack did not open the form in time. Type the values instead, or try `--form` again.\n```\n{usage}\n```"
            ),
            Refusal::FormUnavailable {
                usage,
                refused: Some(code),
            } => format!(
                "Slack refused to open the form for this command (`{}`). Type the values instead:\n```\n{usage}\n```",
                inline_code(code)
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
    /// A verified interaction whose body is not what Slack sends.
    #[error("{0}")]
    BadInteraction(#[from] InteractionError),
}

impl IntoResponse for RequestError {
    fn into_response(self) -> Response {
        let status = match self {
            RequestError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            RequestError::BadRequest(_) | RequestError::BadInteraction(_) => {
                StatusCode::BAD_REQUEST
            }
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
            Refusal::OutOfTime {
                text: "echo <!channel>".into(),
            },
            Refusal::NoForms {
                usage: "/runbook echo <first>".into(),
            },
            Refusal::FormUnavailable {
                usage: "/runbook echo <first>".into(),
                refused: None,
            },
            Refusal::FormUnavailable {
                usage: "/runbook echo <first>".into(),
                refused: Some("invalid_arguments".into()),
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

    #[test]
    fn help_is_laid_out_in_sections_that_fit_slack() {
        let long = "x".repeat(7000);
        let text = format!("Usage: a\nmore\n\nRunbooks:\n• one\n    usage\n• {long}");
        let reply = Reply::help(&text);
        // The fallback: the text up to what Slack advises, cut with an ellipsis.
        let max = crate::jobs::words::MAX_TEXT_CHARS;
        assert!(reply.text.starts_with("Usage: a\nmore\n\nRunbooks:\n• one"));
        assert!(reply.text.ends_with('…') && reply.text.chars().count() == max);
        let short = Reply::help("Usage: a\n\nRunbooks:\n• one");
        assert_eq!(
            short.text, "Usage: a\n\nRunbooks:\n• one",
            "a short one is whole"
        );
        let sections: Vec<String> = reply
            .blocks
            .iter()
            .map(|b| b["text"]["text"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(sections[0], "Usage: a\nmore");
        assert_eq!(sections[1], "Runbooks:");
        assert_eq!(sections[2], "• one\n    usage");
        assert!(sections.iter().all(|s| s.chars().count() <= SECTION_MAX));
        assert_eq!(sections[3..].concat(), format!("• {long}"));
    }

    fn section_texts(reply: &Reply) -> Vec<String> {
        reply
            .blocks
            .iter()
            .map(|b| b["text"]["text"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    #[test]
    fn help_for_many_runbooks_stays_within_slacks_blocks_per_message() {
        let bullets: Vec<String> = (0..80)
            .map(|n| format!("• runbook-{n}\n    usage: /runbook runbook-{n} env=dev|prod"))
            .collect();
        let text = format!("Usage: a\n\nRunbooks:\n{}", bullets.join("\n"));
        let sections = section_texts(&Reply::help(&text));
        assert!(sections.len() <= MESSAGE_BLOCKS_MAX, "{}", sections.len());
        assert!(sections.iter().all(|s| s.chars().count() <= SECTION_MAX));
        assert_eq!(
            sections.join("\n"),
            text.replace("\n\n", "\n"),
            "nothing lost"
        );

        let huge: Vec<String> = (0..2000).map(|n| format!("• runbook-{n:0>80}")).collect();
        let reply = Reply::help(&huge.join("\n"));
        let fallback = serde_json::to_value(&reply).unwrap()["text"].clone();
        let fallback = fallback.as_str().unwrap_or_default();
        assert!(fallback.starts_with("• runbook-0"), "{fallback}");
        assert!(fallback.chars().count() <= crate::jobs::words::MAX_TEXT_CHARS);
        let sections = section_texts(&reply);
        assert_eq!(sections.len(), MESSAGE_BLOCKS_MAX);
        assert!(sections[MESSAGE_BLOCKS_MAX - 1].starts_with("… cut here"));
    }
}
