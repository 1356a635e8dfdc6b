//! A command that runs a runbook: catalog check → job message → enqueue → acknowledgement.
//! Typed commands and `/runbook rerun` both come through [`run`], so a rerun is checked exactly
//! like the command typed again. Every outcome is recorded in the audit log, which never waits.

use crate::app::AppState;
use crate::enqueue::{Queued, enqueue};
use crate::reply::{Refusal, Reply};
use crate::slack::form::SlashCommand;
use chatops_shared::audit::AuditEvent;
use chatops_shared::catalog::{Caller, Rejection};
use chatops_shared::command::ParsedCommand;
use chatops_shared::job::{self, JobKind, JobMessage, SCHEMA_VERSION};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

/// A verified slash command and what every answer to it needs.
pub struct Request<'a> {
    pub state: &'a AppState,
    pub cmd: &'a SlashCommand,
    /// `X-Slack-Signature`: the job id of anything this request queues derives from it.
    pub signature: &'a str,
    pub now: OffsetDateTime,
    /// The day the record of a job queued by this request is filed under (from Slack's
    /// request timestamp, so that every copy of the request names one record).
    pub record_day: Date,
    /// When the answer must be on its way: [`ACK_DEADLINE`] after the request arrived. Every
    /// outside call on the answer's path (user-group lookups, `views.open`, the enqueue) draws
    /// from it, so no combination of slow answers pushes the answer past Slack's 3 s.
    pub deadline: tokio::time::Instant,
}

/// The one deadline of an acknowledgement, from the request's arrival: Slack gives up at 3 s,
/// and the answer still has to travel.
pub const ACK_DEADLINE: std::time::Duration = std::time::Duration::from_millis(2500);

impl Request<'_> {
    pub fn caller(&self) -> Caller<'_> {
        Caller {
            user_id: &self.cmd.user_id,
            channel_id: &self.cmd.channel_id,
        }
    }

    /// A job message from this request, of `kind`, for `runbook` with `params`.
    pub fn message(
        &self,
        kind: JobKind,
        runbook: String,
        params: std::collections::BTreeMap<String, String>,
    ) -> JobMessage {
        let cmd = self.cmd;
        JobMessage {
            schema: SCHEMA_VERSION,
            job_id: job::job_id_from_signature(self.signature),
            kind,
            runbook,
            params,
            user_id: cmd.user_id.clone(),
            user_name: cmd.user_name.clone(),
            team_id: cmd.team_id.clone(),
            channel_id: cmd.channel_id.clone(),
            channel_name: cmd.channel_name.clone(),
            response_url: Some(cmd.response_url.clone()),
            requested_at: self.now,
            enterprise_id: cmd.enterprise_id.clone(),
            traceparent: None,
            started_at: None,
            record_day: Some(self.record_day),
            target: None,
            rerun_of: None,
            catalog_version: Some(self.state.catalog.current().version().to_owned()),
            secret_params: Vec::new(),
        }
    }

    /// Records that the command was refused, with the reason the caller is told (secret
    /// values masked).
    pub fn audit_rejected(&self, reason: String) {
        self.state.audit.record(AuditEvent::Rejected {
            user_id: self.cmd.user_id.clone(),
            channel_id: self.cmd.channel_id.clone(),
            text: self.state.catalog.current().masked_command(&self.cmd.text),
            reason,
        });
    }
}

/// Checks `parsed` against the catalog for the caller and queues it: the acknowledgement, the
/// help text, or why not. `rerun_of` names the job a `/runbook rerun` runs again.
pub async fn run(
    req: &Request<'_>,
    parsed: &ParsedCommand,
    rerun_of: Option<Uuid>,
) -> Result<Reply, Refusal> {
    let state = req.state;
    let caller = req.caller();
    // One catalog for the whole command, even if a reload swaps it meanwhile.
    let catalog = state.catalog.current();
    let accepted = match catalog.check(&caller, parsed) {
        Ok(accepted) => accepted,
        Err(Rejection::Help) => {
            return Ok(Reply::help(&catalog.help_text(&caller, &req.cmd.command)));
        }
        Err(rejection) => {
            tracing::info!(reason = %rejection, "command rejected");
            let denied = match &rejection {
                Rejection::NotAllowed { runbook, .. } | Rejection::WrongChannel { runbook, .. } => {
                    Some(runbook.clone())
                }
                _ => None,
            };
            let refusal = Refusal::Rejected {
                rejection,
                command: req.cmd.command.clone(),
            };
            match denied {
                Some(runbook) => state.audit.record(AuditEvent::Denied {
                    user_id: req.cmd.user_id.clone(),
                    channel_id: req.cmd.channel_id.clone(),
                    runbook,
                    rule: "allow".to_owned(),
                }),
                None => req.audit_rejected(refusal.text()),
            }
            return Err(refusal);
        }
    };
    tracing::Span::current().record("runbook", accepted.runbook.as_str());

    let mut message = req.message(JobKind::Run, accepted.runbook, accepted.params);
    message.rerun_of = rerun_of;
    message.catalog_version = Some(catalog.version().to_owned());
    message.secret_params = catalog
        .get(&message.runbook)
        .map(|rb| rb.secret_params())
        .unwrap_or_default();
    tracing::Span::current().record("job_id", tracing::field::display(message.job_id));
    let ack = Reply::acknowledgement(&message);
    match enqueue(state, &message).await {
        Ok(Queued::Before) => Ok(ack),
        Ok(Queued::Now) => {
            tracing::info!("job queued");
            state.audit.record(AuditEvent::Accepted {
                params: message.shown_params(),
                job_id: message.job_id,
                runbook: message.runbook,
                user_id: message.user_id,
                channel_id: message.channel_id,
                rerun_of,
            });
            Ok(ack)
        }
        Err(e) => {
            tracing::error!(error = %e, "could not queue job");
            Err(Refusal::QueueDown {
                text: req.cmd.text.clone(),
            })
        }
    }
}
