//! `POST /slack/commands`: verify → parse → dispatch: a runbook is validated, queued and
//! acknowledged ([`crate::run`]); `status`, `stop`, `rerun` and `history` are job control
//! ([`crate::jobs`]).
//!
//! Never waits on Azure Automation. A runbook command's outside calls (`views.open` for a form,
//! the enqueue) draw from the one acknowledgement deadline; job control reads job records
//! within a deadline.

use crate::app::AppState;
use crate::forms;
use crate::jobs;
use crate::reply::{Refusal, Reply, RequestError};
use crate::run::{self, Request};
use crate::slack::form::{self, Form, FormError};
use crate::slack::signed;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chatops_shared::audit::AuditEvent;
use chatops_shared::command;
use chatops_shared::mrkdwn::escape;

#[tracing::instrument(skip_all, fields(job_id, user_id, runbook))]
pub async fn slash_command(
    State(state): State<AppState>,
    arrived: Option<Extension<run::Arrived>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, RequestError> {
    let arrived = run::Arrived::or_now(arrived);
    let _ack = crate::metrics::AckTimer::since(arrived);
    let deadline = arrived + run::ACK_DEADLINE;
    let signed = signed::verify(&state.verifier, &headers, &body, deadline)
        .inspect_err(|_| crate::metrics::unverified())?;
    let cmd = match form::parse(&body) {
        Ok(Form::SslCheck) => return Ok(StatusCode::OK.into_response()),
        Ok(Form::Command(cmd)) => cmd,
        Err(FormError::Missing(missing)) => return Err(missing.into()),
        Err(FormError::NotUtf8(field)) => {
            crate::metrics::rejected("not_utf8");
            tracing::info!(field, "command refused: not valid UTF-8");
            return Ok(Refusal::NotUtf8 {
                field: field.to_owned(),
            }
            .into_response());
        }
    };
    tracing::Span::current().record("user_id", cmd.user_id.as_str());
    let req = Request {
        state: &state,
        cmd: &cmd,
        request_id: &signed.signature,
        now: signed.now,
        record_day: signed.record_day,
        deadline,
    };
    let reply = handle(&req).await.unwrap_or_else(Reply::from);
    Ok(reply.into_response())
}

/// A verified command: refused unless its workspace is served; then a job-control word
/// (`status`, `stop`, `rerun`, `history`) goes to [`crate::jobs`], anything else is a runbook
/// to check and queue ([`crate::run`]).
async fn handle(req: &Request<'_>) -> Result<Reply, Refusal> {
    if let Err(denied) = workspace_allowed(req) {
        return Ok(denied);
    }
    let parsed = command::parse(&req.cmd.text).map_err(|error| {
        crate::metrics::rejected("unparsable");
        let refusal = Refusal::Unparsable {
            error,
            command: req.cmd.command.clone(),
        };
        req.audit_rejected(refusal.text());
        refusal
    })?;
    if let Some(word) = parsed.runbook.as_deref().and_then(jobs::word) {
        return Ok(jobs::handle(req, word, &parsed.args).await);
    }
    // `--form`, or required values missing: a modal when the bot token allows one.
    let (parsed, form_asked) = forms::take_flag(parsed);
    let catalog = req.state.catalog.current();
    let groups = run::groups_for(req, &catalog, &parsed).await;
    if let Some(answer) = forms::offer(req, &parsed, form_asked, &catalog, &groups).await {
        return Ok(answer);
    }
    run::run_checked(req, &parsed, None, &catalog, &groups).await
}

/// Checks the command's workspace against `SLACK_TEAM_ID` / `SLACK_ENTERPRISE_ID`; a refusal is
/// logged, audited as denied and answered to the caller only.
pub(crate) fn workspace_allowed(req: &Request<'_>) -> Result<(), Reply> {
    let cmd = req.cmd;
    let Err(denied) = req
        .state
        .workspaces
        .check(&cmd.team_id, cmd.enterprise_id.as_deref())
    else {
        return Ok(());
    };
    crate::metrics::denied_workspace();
    let rule = denied.rule.as_str();
    // The first word: the runbook or job-control word the caller asked for.
    let runbook = cmd.text.split_whitespace().next().unwrap_or_default();
    tracing::info!(
        decision = "deny",
        user = %cmd.user_id,
        channel = %cmd.channel_id,
        runbook,
        rule,
        "command denied: workspace not served"
    );
    req.state.audit.record(AuditEvent::Denied {
        user_id: cmd.user_id.clone(),
        channel_id: cmd.channel_id.clone(),
        runbook: runbook.to_owned(),
        rule: rule.to_owned(),
    });
    Err(Reply::ephemeral(escape(&denied.to_string())))
}
