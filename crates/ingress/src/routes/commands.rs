//! `POST /slack/commands`: verify → parse → validate → enqueue → acknowledge.
//!
//! Never waits on Azure Automation: the only outside call is one bounded enqueue.

use crate::app::AppState;
use crate::reply::{Reply, RequestError};
use crate::slack::form::{self, Form, SlashCommand};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chatops_shared::catalog::{Caller, Rejection};
use chatops_shared::claims::Claims;
use chatops_shared::command;
use chatops_shared::job::{self, JobKind, JobMessage, SCHEMA_VERSION};
use chatops_shared::mrkdwn::{escape, inline_code};
use time::OffsetDateTime;
use uuid::Uuid;

#[tracing::instrument(skip_all, fields(job_id, user_id, runbook))]
pub async fn slash_command(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, RequestError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signature = header("x-slack-signature");
    let now = OffsetDateTime::now_utc();
    state.verifier.verify(
        header("x-slack-request-timestamp"),
        signature,
        &body,
        now.unix_timestamp(),
    )?;
    let cmd = match form::parse(&body)? {
        Form::SslCheck => return Ok(StatusCode::OK.into_response()),
        Form::Command(cmd) => cmd,
    };
    // Verified above, so a signature is present.
    let signature = signature.unwrap_or_default();
    tracing::Span::current().record("user_id", cmd.user_id.as_str());
    Ok(handle(&state, &cmd, signature, now).await.into_response())
}

async fn handle(
    state: &AppState,
    cmd: &SlashCommand,
    signature: &str,
    now: OffsetDateTime,
) -> Reply {
    let caller = Caller {
        user_id: &cmd.user_id,
        channel_id: &cmd.channel_id,
    };
    let parsed = match command::parse(&cmd.text) {
        Ok(parsed) => parsed,
        Err(e) => {
            return Reply::ephemeral(escape(&format!("{e}\n{}", general_usage(&cmd.command))));
        }
    };
    let accepted = match state.catalog.check(&caller, &parsed) {
        Ok(accepted) => accepted,
        Err(Rejection::Help) => {
            return Reply::ephemeral(escape(&state.catalog.help_text(&caller, &cmd.command)));
        }
        Err(rejection) => {
            tracing::info!(reason = %rejection, "command rejected");
            return Reply::ephemeral(escape(&rejection_text(rejection, &cmd.command)));
        }
    };
    tracing::Span::current().record("runbook", accepted.runbook.as_str());

    let message = JobMessage {
        schema: SCHEMA_VERSION,
        job_id: job::job_id_from_signature(signature),
        kind: JobKind::Run,
        runbook: accepted.runbook,
        params: accepted.params,
        user_id: cmd.user_id.clone(),
        user_name: cmd.user_name.clone(),
        team_id: cmd.team_id.clone(),
        channel_id: cmd.channel_id.clone(),
        channel_name: cmd.channel_name.clone(),
        response_url: cmd.response_url.clone(),
        requested_at: now,
        enterprise_id: cmd.enterprise_id.clone(),
        traceparent: None,
        started_at: None,
    };
    tracing::Span::current().record("job_id", tracing::field::display(message.job_id));
    let ack = Reply::in_channel(acknowledgement(&message));
    if !state.replays.claim(message.job_id) {
        tracing::info!("replayed request: answering again without queueing");
        return ack;
    }
    // Given back unless the job is queued, also when this request is dropped mid-way (its
    // time limit, or the client going away), so that a later copy is not told "queued".
    let claim = Claim {
        claims: &state.replays,
        job_id: message.job_id,
        queued: false,
    };
    match state.queue.send(&message.encode(&state.job_key)).await {
        Ok(()) => {
            claim.queued();
            tracing::info!("job queued");
            ack
        }
        Err(e) => {
            tracing::error!(error = %e, "could not queue job");
            Reply::ephemeral(format!(
                ":warning: Could not queue `{}` right now: the job queue did not answer. Nothing was started. Please try again in a minute.",
                escape(&cmd.text)
            ))
        }
    }
}

/// A job id claimed against replays, released on drop unless the job was queued.
struct Claim<'a> {
    claims: &'a Claims,
    job_id: Uuid,
    queued: bool,
}

impl Claim<'_> {
    fn queued(mut self) {
        self.queued = true;
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if !self.queued {
            self.claims.release(&self.job_id);
        }
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

/// The in-channel answer: who started which runbook with which parameters.
fn acknowledgement(message: &JobMessage) -> String {
    let with = if message.params.is_empty() {
        String::new()
    } else {
        format!(
            " `{}`",
            escape(&inline_code(&job::format_params(&message.params)))
        )
    };
    format!(
        ":inbox_tray: <@{}> queued *{}*{} (job `{}`)",
        escape(&message.user_id),
        escape(&message.runbook),
        with,
        message.short_id()
    )
}
