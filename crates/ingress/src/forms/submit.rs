//! A form's submission (`view_submission`): the values become a command that goes through the
//! same path as a typed one ([`crate::run::run`]: the workspace, the catalog check with the
//! submitter's authorization in the form's channel, the one enqueue under the request's
//! signature, the audit). Slack is answered in the modal: errors next to the fields they are
//! about, another refusal in place of the form, nothing (the modal closes) when queued.
//!
//! The job carries no `response_url` (a submission has none): the runner shows it with the bot
//! token, in the channel kept in the view's `private_metadata`.

use super::view::{self, Metadata};
use crate::app::AppState;
use crate::reply::{Refusal, Reply};
use crate::routes::commands::workspace_allowed;
use crate::run::{self, Request};
use crate::slack::form::SlashCommand;
use crate::slack::interaction::ViewSubmission;
use crate::slack::signed::Signed;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chatops_shared::catalog::Rejection;
use chatops_shared::command::{Arg, ParsedCommand, quote};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// What Slack is told about a submission.
#[derive(Debug, Clone, PartialEq)]
pub enum ViewAnswer {
    /// Empty 200: the modal closes.
    Close,
    /// `response_action: errors`: each message under the input (`block_id`) it is about.
    Errors(BTreeMap<String, String>),
    /// `response_action: update`: the modal is replaced by this view.
    Update(Value),
}

impl IntoResponse for ViewAnswer {
    fn into_response(self) -> Response {
        match self {
            ViewAnswer::Close => StatusCode::OK.into_response(),
            ViewAnswer::Errors(errors) => {
                Json(json!({"response_action": "errors", "errors": errors})).into_response()
            }
            ViewAnswer::Update(view) => {
                Json(json!({"response_action": "update", "view": view})).into_response()
            }
        }
    }
}

/// Checks and queues a submission; see the module doc.
pub async fn submit(state: &AppState, signed: &Signed, sub: &ViewSubmission) -> ViewAnswer {
    if sub.callback_id != view::CALLBACK_ID {
        tracing::info!(callback_id = %sub.callback_id, "submission of a view this app does not know: closed");
        return ViewAnswer::Close;
    }
    let Ok(meta) = serde_json::from_str::<Metadata>(&sub.private_metadata) else {
        tracing::info!("form submission without readable metadata");
        return notice(
            "This form could not be read. Nothing was started. Run the command again to get a new one.",
        );
    };
    let args = args_of(&sub.values);
    let parsed = ParsedCommand {
        runbook: Some(meta.runbook),
        args,
    };
    let cmd = SlashCommand {
        team_id: sub.team_id.clone(),
        enterprise_id: sub.enterprise_id.clone(),
        channel_id: meta.channel_id,
        channel_name: meta.channel_name,
        user_id: sub.user_id.clone(),
        user_name: sub.user_name.clone(),
        command: meta.command,
        text: text_of(&parsed),
        response_url: None,
        trigger_id: None,
    };
    let request_id = request_id(sub, &cmd.text, &signed.signature);
    let req = Request {
        state,
        cmd: &cmd,
        request_id: &request_id,
        now: signed.now,
        record_day: meta.record_day.unwrap_or(signed.record_day),
        deadline: signed.deadline,
    };
    if let Err(denied) = workspace_allowed(&req) {
        return ViewAnswer::Update(view::notice("Not run", &denied.text));
    }
    match run::run(&req, &parsed, None).await {
        Ok(_) => ViewAnswer::Close,
        Err(refusal) => refused(refusal, sub),
    }
}

/// What names the job of a submission: one job per form and values, however often it is
/// submitted (Slack shows an error and keeps the form open when the answer to a submission that
/// was queued comes late, and the user sends it again). The values go in by their SHA-256: the
/// id derivation lower-cases what it is given (it was made for hex signatures), and values
/// that differ only in case are different jobs. The record's day is the form's too
/// ([`view::Metadata::record_day`]), so a submission sent again after midnight UTC names the
/// same record.
fn request_id(sub: &ViewSubmission, text: &str, signature: &str) -> String {
    if sub.view_id.is_empty() {
        return signature.to_owned();
    }
    let values = hex::encode(Sha256::digest(text.as_bytes()));
    format!("view:{}:{}:{values}", sub.team_id, sub.view_id)
}

/// A refusal next to the field it is about when the form has that field, else in place of
/// the form. Values too long to queue: under the longest one.
fn refused(refusal: Refusal, sub: &ViewSubmission) -> ViewAnswer {
    if let Refusal::TooLarge { bytes } = &refusal
        && let Some(block) = longest_value(sub)
    {
        let text = format!(
            "Too long: the form's values make a job of {} KB, and a job holds at most {} KB. Shorten this value (or others).",
            bytes.div_ceil(1024),
            chatops_shared::queue::MAX_MESSAGE_BYTES / 1024
        );
        return ViewAnswer::Errors(BTreeMap::from([(block, text)]));
    }
    // A failure that may pass: the form stays open with what was typed, and Run again sends
    // the same form, which names the same job (`request_id`): never two jobs.
    if let Some(text) = try_again(&refusal)
        && let Some(block) = sub.values.keys().find(|b| view::param_of(b).is_some())
    {
        return ViewAnswer::Errors(BTreeMap::from([(block.clone(), text)]));
    }
    if let Refusal::Rejected { rejection, .. } = &refusal
        && let Some((name, text)) = field_error(rejection, sub)
    {
        let block = view::block_id(name);
        if sub.values.contains_key(&block) {
            return ViewAnswer::Errors(BTreeMap::from([(block, text)]));
        }
    }
    notice(&Reply::from(refusal).text)
}

/// What to say above Run when a submission may succeed if sent again as it is.
fn try_again(refusal: &Refusal) -> Option<String> {
    Some(match refusal {
        Refusal::QueueDown { .. } => {
            "Not run: the job queue did not answer. Nothing was started. Press Run again in a minute.".to_owned()
        }
        Refusal::OutOfTime { .. } => {
            "Not confirmed in time: the job queue was slow. Press Run again: if the job was queued after all, it runs once.".to_owned()
        }
        Refusal::Rejected {
            rejection:
                Rejection::GroupsUnavailable { .. } | Rejection::ValueUnchecked { .. },
            ..
        } => {
            "Not run: Slack could not say who is in the user groups this runbook allows. Press Run again in a moment.".to_owned()
        }
        _ => return None,
    })
}

/// The `block_id` of the field holding the longest value.
fn longest_value(sub: &ViewSubmission) -> Option<String> {
    sub.values
        .iter()
        .filter(|(block, _)| view::param_of(block).is_some())
        .filter_map(|(block, value)| Some((block, value.as_deref()?.len())))
        .max_by_key(|(_, len)| *len)
        .map(|(block, _)| block.clone())
}

/// The parameter a rejection is about, and what to say under its field, in the form's terms
/// (no usage line and no `name=value`: the form shows the fields).
fn field_error<'r>(rejection: &'r Rejection, sub: &ViewSubmission) -> Option<(&'r str, String)> {
    let left_empty = |name: &str| {
        sub.values
            .get(&view::block_id(name))
            .is_some_and(Option::is_none)
    };
    let as_typed = || {
        let text = rejection.to_string();
        text.split(" Usage: ").next().unwrap_or_default().to_owned()
    };
    Some(match rejection {
        Rejection::MissingParameter { name, .. } | Rejection::EmptyValue { name, .. } => {
            (name, "Required: give a value.".to_owned())
        }
        Rejection::NotAChoice { name, choices, .. } => {
            (name, format!("Choose one of: {}.", choices.join(", ")))
        }
        Rejection::InvalidValue { name, .. } | Rejection::RepeatedParameter { name, .. } => {
            (name, as_typed())
        }
        // The default was used, and the caller may not have it.
        Rejection::ValueNotAllowed { name, value, .. } if left_empty(name) => (
            name,
            format!(
                "The default, {value}, is limited to some people or channels (the parameter's `only` list): choose a value."
            ),
        ),
        Rejection::ValueNotAllowed { name, value, .. } => (
            name,
            format!(
                "{value} is limited to some people or channels (the parameter's `only` list): choose another value, or ask an admin for access."
            ),
        ),
        Rejection::HiddenCharacter {
            param: Some(name),
            code,
            position,
            ..
        } => (
            name,
            format!(
                "Contains the invisible character {code} at character {position}, which can make a value look different from what runs: type it again without it."
            ),
        ),
        // The catalog changed while the form was open.
        Rejection::FixedParameter { name, .. } | Rejection::UnknownParameter { name, .. } => (
            name,
            "The runbook no longer takes this value from you: close the form and run the command again.".to_owned(),
        ),
        _ => return None,
    })
}

fn notice(text: &str) -> ViewAnswer {
    ViewAnswer::Update(view::notice("Not run", text))
}

/// The command as it would have been typed, for the audit log and the answers.
fn text_of(parsed: &ParsedCommand) -> String {
    let mut text = parsed.runbook.clone().unwrap_or_default();
    for arg in &parsed.args {
        if let Arg::Named { name, value } = arg {
            text.push(' ');
            text.push_str(name);
            text.push('=');
            text.push_str(&quote(value));
        }
    }
    text
}

/// The form's values as named arguments. Spaces around a value are dropped (a phone keyboard's
/// or a paste's, which a typed command would need quotes to pass on), and a field left empty,
/// or holding only spaces, is not given: the runner fills in defaults, the check names missing
/// ones.
fn args_of(values: &BTreeMap<String, Option<String>>) -> Vec<Arg> {
    values
        .iter()
        .filter_map(|(block, value)| {
            let name = view::param_of(block)?;
            let value = value.as_deref().map(str::trim).filter(|v| !v.is_empty())?;
            Some(Arg::Named {
                name: name.to_owned(),
                value: value.to_owned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatops_shared::catalog::ValueProblem;

    /// A submission of fields `count` (typed "99") and `env` (left empty).
    fn submission() -> ViewSubmission {
        ViewSubmission {
            team_id: "T1".into(),
            enterprise_id: None,
            user_id: "U1".into(),
            user_name: "ana".into(),
            view_id: "V1".into(),
            callback_id: view::CALLBACK_ID.into(),
            private_metadata: String::new(),
            values: BTreeMap::from([
                (view::block_id("count"), Some("99".into())),
                (view::block_id("env"), None),
            ]),
        }
    }

    #[test]
    fn a_failure_that_may_pass_keeps_the_form_open_to_be_sent_again() {
        let groups = Refusal::Rejected {
            rejection: Rejection::GroupsUnavailable {
                runbook: "x".into(),
                problem: "timed out".into(),
            },
            command: "/runbook".into(),
        };
        for refusal in [
            Refusal::QueueDown { text: "x".into() },
            Refusal::OutOfTime { text: "x".into() },
            groups,
        ] {
            let ViewAnswer::Errors(errors) = refused(refusal.clone(), &submission()) else {
                panic!("{refusal:?}: the form was replaced");
            };
            let text = errors
                .get(&view::block_id("count"))
                .cloned()
                .unwrap_or_default();
            assert!(text.contains("Run again"), "{refusal:?}: {text}");
        }
        let denied = Refusal::Rejected {
            rejection: Rejection::NotAllowed {
                runbook: "x".into(),
                user_id: "U1".into(),
            },
            command: "/runbook".into(),
        };
        assert!(matches!(
            refused(denied, &submission()),
            ViewAnswer::Update(_)
        ));
    }

    #[test]
    fn a_value_problem_goes_under_its_field_without_the_usage() {
        let rejection = Rejection::InvalidValue {
            name: "count".into(),
            value: "99".into(),
            problem: ValueProblem::OutOfRange {
                min: Some(1),
                max: Some(10),
            },
            usage: "scale count=<1..10>".into(),
        };
        let Some((name, text)) = field_error(&rejection, &submission()) else {
            panic!("no field");
        };
        assert_eq!(name, "count");
        assert_eq!(
            text,
            "`99` is not a valid value for `count`; give a whole number from 1 to 10."
        );
        assert_eq!(
            field_error(
                &Rejection::NotAllowed {
                    runbook: "x".into(),
                    user_id: "U1".into()
                },
                &submission()
            ),
            None
        );
    }

    #[test]
    fn a_form_sent_again_names_the_same_job_and_other_values_another() {
        let sub = submission();
        let job = |text: &str, signature: &str| {
            chatops_shared::job::job_id_from_signature(&request_id(&sub, text, signature))
        };
        assert_eq!(
            job("deploy branch=x", "v0=1"),
            job("deploy branch=x", "v0=2")
        );
        assert_ne!(
            job("deploy branch=x", "v0=1"),
            job("deploy branch=X", "v0=1")
        );
        let other_view = ViewSubmission {
            view_id: "V2".into(),
            ..submission()
        };
        assert_ne!(
            request_id(&sub, "deploy branch=x", "v0=1"),
            request_id(&other_view, "deploy branch=x", "v0=1")
        );
    }

    #[test]
    fn a_value_kept_from_the_caller_or_hidden_characters_go_under_the_field() {
        let limited = |name: &str, value: &str| Rejection::ValueNotAllowed {
            runbook: "scale".into(),
            name: name.into(),
            value: value.into(),
            usage: String::new(),
        };
        let sub = submission();
        let Some(("env", text)) = field_error(&limited("env", "prod"), &sub) else {
            panic!("not under env");
        };
        assert!(text.starts_with("The default, prod, is limited"), "{text}");
        let Some(("count", text)) = field_error(&limited("count", "99"), &sub) else {
            panic!("not under count");
        };
        assert!(text.starts_with("99 is limited"), "{text}");
        let hidden = Rejection::HiddenCharacter {
            place: "the value of `count`".into(),
            param: Some("count".into()),
            code: "U+200B".into(),
            position: 2,
            usage: String::new(),
        };
        let Some(("count", text)) = field_error(&hidden, &sub) else {
            panic!("not under count");
        };
        assert!(text.contains("U+200B at character 2"), "{text}");
    }

    #[test]
    fn spaces_around_a_value_are_dropped_and_a_blank_field_is_not_given() {
        let values = BTreeMap::from([
            ("param:service".to_owned(), Some(" web \n".to_owned())),
            ("param:note".to_owned(), Some("   ".to_owned())),
            ("param:env".to_owned(), None),
            ("param:msg".to_owned(), Some("two  words".to_owned())),
            ("other".to_owned(), Some("x".to_owned())),
        ]);
        let named = |name: &str, value: &str| Arg::Named {
            name: name.into(),
            value: value.into(),
        };
        assert_eq!(
            args_of(&values),
            [named("msg", "two  words"), named("service", "web")]
        );
    }

    #[test]
    fn the_text_quotes_values_as_typed() {
        let parsed = ParsedCommand {
            runbook: Some("echo".into()),
            args: vec![Arg::Named {
                name: "first".into(),
                value: "a b".into(),
            }],
        };
        assert_eq!(text_of(&parsed), "echo first=\"a b\"");
    }
}
