//! `POST /slack/commands`: verify → parse → validate → enqueue → acknowledge.
//!
//! Never waits on Azure Automation: the only outside call is one bounded enqueue.

use crate::app::AppState;
use crate::reply::{Refusal, Reply, RequestError};
use crate::slack::form::{self, Form, FormError, SlashCommand};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chatops_shared::catalog::{Caller, Rejection};
use chatops_shared::command;
use chatops_shared::job::{self, JobKind, JobMessage, SCHEMA_VERSION};
use chatops_shared::recent_ids::RecentIds;
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
    let cmd = match form::parse(&body) {
        Ok(Form::SslCheck) => return Ok(StatusCode::OK.into_response()),
        Ok(Form::Command(cmd)) => cmd,
        Err(FormError::Missing(missing)) => return Err(missing.into()),
        Err(FormError::NotUtf8(field)) => {
            tracing::info!(field, "command refused: not valid UTF-8");
            return Ok(Refusal::NotUtf8 {
                field: field.to_owned(),
            }
            .into_response());
        }
    };
    // Verified above, so a signature is present.
    let signature = signature.unwrap_or_default();
    tracing::Span::current().record("user_id", cmd.user_id.as_str());
    // Verified above, so the timestamp is present and recent; every copy of this request
    // carries it, so every ingress files the job's record under the same day.
    let record_day = header("x-slack-request-timestamp")
        .and_then(|t| t.trim().parse::<i64>().ok())
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
        .unwrap_or(now)
        .date();
    let reply = handle(&state, &cmd, signature, now, record_day)
        .await
        .unwrap_or_else(Reply::from);
    Ok(reply.into_response())
}

/// A verified command: the reply when it was queued (or is help), or why it was not.
async fn handle(
    state: &AppState,
    cmd: &SlashCommand,
    signature: &str,
    now: OffsetDateTime,
    record_day: time::Date,
) -> Result<Reply, Refusal> {
    let caller = Caller {
        user_id: &cmd.user_id,
        channel_id: &cmd.channel_id,
    };
    let parsed = command::parse(&cmd.text).map_err(|error| Refusal::Unparsable {
        error,
        command: cmd.command.clone(),
    })?;
    let accepted = match state.catalog.check(&caller, &parsed) {
        Ok(accepted) => accepted,
        Err(Rejection::Help) => {
            return Ok(Reply::help(&state.catalog.help_text(&caller, &cmd.command)));
        }
        Err(rejection) => {
            tracing::info!(reason = %rejection, "command rejected");
            return Err(Refusal::Rejected {
                rejection,
                command: cmd.command.clone(),
            });
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
        record_day: Some(record_day),
        target: None,
        rerun_of: None,
    };
    tracing::Span::current().record("job_id", tracing::field::display(message.job_id));
    let ack = Reply::acknowledgement(&message);
    if !state.replays.claim(message.job_id) {
        tracing::info!("replayed request: answering again without queueing");
        return Ok(ack);
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
            Ok(ack)
        }
        Err(e) => {
            tracing::error!(error = %e, "could not queue job");
            Err(Refusal::QueueDown {
                text: cmd.text.clone(),
            })
        }
    }
}

/// A job id claimed against replays, released on drop unless the job was queued.
struct Claim<'a> {
    claims: &'a RecentIds,
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
