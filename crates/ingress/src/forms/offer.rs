//! On the command path: a runbook command gets a form when it asks for one (`--form`) or lacks
//! a required value, the caller may run the runbook from this channel, and the app has a bot
//! token. The form opens with `views.open` inside the acknowledgement deadline; when Slack does
//! not take it (the trigger expired, Slack was slow), the caller gets the usage text instead.
//! Without a bot token a command that lacks values is answered as it always was.

use super::view::{self, Metadata};
use crate::reply::{Refusal, Reply};
use crate::run::Request;
use chatops_shared::catalog::{Caller, Catalog, Groups, ParamSpec, Rejection, Runbook};
use chatops_shared::command::{Arg, ParsedCommand};
use chatops_shared::mrkdwn::escape;
use chatops_shared::slack_api::SlackApiError;
use std::collections::BTreeMap;

/// The word that asks for a form, anywhere after the runbook name.
pub const FLAG: &str = chatops_shared::command::FORM_FLAG;

/// The command without `--form`, and whether it was there.
pub fn take_flag(mut parsed: ParsedCommand) -> (ParsedCommand, bool) {
    let before = parsed.args.len();
    parsed
        .args
        .retain(|a| !matches!(a, Arg::Positional(v) if v == FLAG));
    let asked = parsed.args.len() != before;
    (parsed, asked)
}

/// The answer when this command gets a form (opened, or why not), or `None` to go on as a
/// typed command. Refusals about the runbook itself (unknown, not allowed here) are left to the
/// typed path, which answers and audits them.
/// `groups` are the caller's user-group answers for this command (who may run it counts them,
/// as on the typed path).
pub async fn offer(
    req: &Request<'_>,
    parsed: &ParsedCommand,
    asked: bool,
    catalog: &Catalog,
    groups: &Groups,
) -> Option<Reply> {
    let state = req.state;
    let rb = catalog.get(&parsed.runbook.as_deref()?.to_lowercase())?;
    let caller = Caller {
        groups,
        ..req.caller()
    };
    rb.authorize(&caller).ok()?;
    let missing = matches!(
        catalog.check(&caller, parsed),
        Err(Rejection::MissingParameter { .. })
    );
    if !asked && !missing {
        return None;
    }
    let usage = rb.usage(&req.cmd.command);
    let Some(api) = &state.slack_api else {
        return asked.then(|| refuse(req, Refusal::NoForms { usage }));
    };
    let meta = Metadata {
        runbook: rb.name.clone(),
        channel_id: req.cmd.channel_id.clone(),
        channel_name: req.cmd.channel_name.clone(),
        command: req.cmd.command.clone(),
        record_day: Some(req.record_day),
    };
    let may_choose = |p: &ParamSpec, value: &str| rb.may_choose(p, value, &caller);
    let modal = view::modal(
        rb,
        &prefill(rb, &parsed.args),
        &meta,
        &may_choose,
        groups.problem().is_some(),
    );
    let opened = match req.cmd.trigger_id.as_deref() {
        Some(trigger) => api
            .open_view(trigger, &modal, req.deadline)
            .await
            .map_err(|e| (e.to_string(), refused_form(&e))),
        None => Err(("the command carried no trigger_id".to_owned(), None)),
    };
    match opened {
        Ok(()) => {
            tracing::info!(runbook = %rb.name, "form opened");
            Some(Reply::ephemeral(format!(
                ":memo: Fill in the form to run *{}*.",
                escape(&rb.name)
            )))
        }
        Err((reason, refused)) => {
            tracing::warn!(runbook = %rb.name, %reason, "could not open the form");
            asked.then(|| refuse(req, Refusal::FormUnavailable { usage, refused }))
        }
    }
}

/// Slack's error code when it refused the form itself, which asking again does not change (a
/// view over its limits: `invalid_arguments`); `None` for a late answer or a trigger that was
/// used, expired or unknown, which a new command (a new trigger) may get past.
fn refused_form(e: &SlackApiError) -> Option<String> {
    match e {
        SlackApiError::Slack { error, .. } if !error.ends_with("_trigger_id") => {
            Some(error.clone())
        }
        _ => None,
    }
}

/// The refusal's answer, audited as a rejected command.
fn refuse(req: &Request<'_>, refusal: Refusal) -> Reply {
    req.audit_rejected(refusal.text());
    Reply::from(refusal)
}

/// The values already typed, by parameter: positional ones fill the open parameters in order,
/// as for a typed command; names the runbook does not take (or fixes) are left out.
fn prefill(rb: &Runbook, args: &[Arg]) -> BTreeMap<String, String> {
    let mut open = rb.params.iter().filter(|p| p.fixed.is_none());
    let mut values = BTreeMap::new();
    for arg in args {
        match arg {
            Arg::Positional(v) => {
                if let Some(p) = open.next() {
                    values.insert(p.name.clone(), v.clone());
                }
            }
            Arg::Named { name, value } => {
                if rb.param(name).is_some_and(|p| p.fixed.is_none()) {
                    values.insert(name.clone(), value.clone());
                }
            }
        }
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_refusal_of_the_form_itself_is_told_apart_from_a_late_answer() {
        let slack = |error: &str| SlackApiError::Slack {
            method: "views.open".into(),
            error: error.into(),
        };
        assert_eq!(
            refused_form(&slack("invalid_arguments")).as_deref(),
            Some("invalid_arguments")
        );
        for trigger in [
            "expired_trigger_id",
            "exchanged_trigger_id",
            "invalid_trigger_id",
        ] {
            assert_eq!(refused_form(&slack(trigger)), None, "{trigger}");
        }
        let late = SlackApiError::Deadline {
            method: "views.open".into(),
            reason: "timed out".into(),
        };
        assert_eq!(refused_form(&late), None);
    }

    #[test]
    fn the_flag_is_taken_wherever_it_is() {
        let parsed = chatops_shared::command::parse("deploy --form env=dev")
            .unwrap_or_else(|e| panic!("{e}"));
        let (parsed, asked) = take_flag(parsed);
        assert!(asked);
        assert_eq!(
            parsed.args,
            [Arg::Named {
                name: "env".into(),
                value: "dev".into()
            }]
        );
        let (_, asked) = take_flag(
            chatops_shared::command::parse("deploy env=--form").unwrap_or_else(|e| panic!("{e}")),
        );
        assert!(!asked);
    }
}
