//! A command that runs a runbook: catalog check → job message → enqueue → acknowledgement.
//! Typed commands and `/runbook rerun` both come through [`run`], so a rerun is checked exactly
//! like the command typed again. Every outcome is recorded in the audit log, which never waits.

use crate::app::AppState;
use crate::enqueue::{EnqueueError, Queued, enqueue};
use crate::reply::{Refusal, Reply};
use crate::slack::form::SlashCommand;
use chatops_shared::audit::AuditEvent;
use chatops_shared::catalog::{Caller, Catalog, Groups, Rejection};
use chatops_shared::command::ParsedCommand;
use chatops_shared::job::{self, JobKind, JobMessage, SCHEMA_VERSION};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

/// A verified slash command and what every answer to it needs.
pub struct Request<'a> {
    pub state: &'a AppState,
    pub cmd: &'a SlashCommand,
    /// What the job id of anything this request queues derives from: `X-Slack-Signature` for
    /// a typed command (a copy of the request names the same job), a form's view and values
    /// for a submission (a second submission of the same form names the same job).
    pub request_id: &'a str,
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

/// When a Slack request arrived, before its body was read ([`stamp_arrival`]): the
/// acknowledgement's deadline and its measured latency count from here, so a body that is
/// slow to come takes its time from the 3 s, not in addition to them.
#[derive(Debug, Clone, Copy)]
pub struct Arrived(pub tokio::time::Instant);

impl Arrived {
    /// The arrival stamped on the request, or now when it has none (a router without
    /// [`stamp_arrival`]).
    pub fn or_now(stamp: Option<axum::Extension<Arrived>>) -> tokio::time::Instant {
        stamp.map_or_else(tokio::time::Instant::now, |axum::Extension(at)| at.0)
    }
}

/// Middleware: stamps each request with its [`Arrived`] time as it comes in.
pub async fn stamp_arrival(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    request
        .extensions_mut()
        .insert(Arrived(tokio::time::Instant::now()));
    next.run(request).await
}

impl Request<'_> {
    /// The newest day a record can be filed under: today, or Slack's day when its clock is
    /// past midnight before this one (records are filed under Slack's day, `record_day`).
    pub fn newest_day(&self) -> Date {
        self.now.date().max(self.record_day)
    }

    pub fn caller(&self) -> Caller<'_> {
        Caller {
            user_id: &self.cmd.user_id,
            channel_id: &self.cmd.channel_id,
            groups: chatops_shared::catalog::Groups::none(),
        }
    }

    /// A job message from this request, of `kind`, for `runbook` with `params`, checked
    /// against `catalog` (its version goes in the message).
    pub fn message(
        &self,
        catalog: &Catalog,
        kind: JobKind,
        runbook: String,
        params: std::collections::BTreeMap<String, String>,
    ) -> JobMessage {
        let cmd = self.cmd;
        JobMessage {
            schema: SCHEMA_VERSION,
            job_id: job::job_id_from_signature(self.request_id),
            kind,
            runbook,
            params,
            user_id: cmd.user_id.clone(),
            user_name: cmd.user_name.clone(),
            team_id: cmd.team_id.clone(),
            channel_id: cmd.channel_id.clone(),
            channel_name: cmd.channel_name.clone(),
            response_url: cmd.response_url.clone(),
            requested_at: self.now,
            enterprise_id: cmd.enterprise_id.clone(),
            traceparent: chatops_shared::telemetry::trace::new_traceparent(),
            started_at: None,
            record_day: Some(self.record_day),
            target: None,
            rerun_of: None,
            catalog_version: Some(catalog.version().to_owned()),
            secret_params: Vec::new(),
        }
    }

    /// Records that the command was refused, with the reason the caller is told (secret
    /// values masked; a job-control command keeps its word and the job id or runbook name
    /// after it, and anything else, perhaps values typed again for a rerun, is masked).
    pub fn audit_rejected(&self, reason: String) {
        let text = &self.cmd.text;
        let mut words = text.split_whitespace();
        let first = words.next().unwrap_or_default();
        let catalog = self.state.catalog.current();
        let text = if crate::jobs::word(first).is_some() {
            use crate::jobs::reference::{self, RefError};
            let named = |w: &str| {
                let job_id = !matches!(reference::parse(w), Err(RefError::NotAnId { .. }));
                job_id || catalog.get(&w.to_lowercase()).is_some()
            };
            let second = words.next().map(|w| {
                if named(w) {
                    w
                } else {
                    chatops_shared::job::MASK
                }
            });
            std::iter::once(first)
                .chain(second)
                .chain(words.map(|_| chatops_shared::job::MASK))
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            catalog.masked_command(text)
        };
        self.state.audit.record(AuditEvent::Rejected {
            user_id: self.cmd.user_id.clone(),
            channel_id: self.cmd.channel_id.clone(),
            text,
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
    // One catalog for the whole command, even if a reload swaps it meanwhile.
    let catalog = req.state.catalog.current();
    let groups = groups_for(req, &catalog, parsed).await;
    run_checked(req, parsed, rerun_of, &catalog, &groups).await
}

/// The caller's user-group answers that checking `parsed` against `catalog` needs (looked up
/// once per command, within the acknowledgement's deadline).
pub async fn groups_for(req: &Request<'_>, catalog: &Catalog, parsed: &ParsedCommand) -> Groups {
    let needed = catalog.groups_to_ask(&req.cmd.user_id, &req.cmd.channel_id, parsed);
    crate::policy::groups(req, &needed).await
}

/// [`run`] with the catalog and the group answers already in hand.
pub async fn run_checked(
    req: &Request<'_>,
    parsed: &ParsedCommand,
    rerun_of: Option<Uuid>,
    catalog: &Catalog,
    groups: &Groups,
) -> Result<Reply, Refusal> {
    let state = req.state;
    let caller = Caller {
        groups,
        ..req.caller()
    };
    let accepted = match catalog.check(&caller, parsed) {
        Ok(accepted) => accepted,
        Err(Rejection::Help) => {
            crate::metrics::help();
            return Ok(Reply::help(&catalog.help_text(&caller, &req.cmd.command)));
        }
        Err(Rejection::HelpFor { runbook }) => {
            crate::metrics::help();
            let help = catalog.runbook_help(&runbook, &caller, &req.cmd.command);
            return Ok(Reply::help(&help));
        }
        Err(rejection) => {
            crate::metrics::refused(&rejection);
            tracing::info!(reason = %rejection, "command rejected");
            let denied = rejection.denial().map(|(rb, rule)| (rb.to_owned(), rule));
            let refusal = Refusal::Rejected {
                rejection,
                command: req.cmd.command.clone(),
            };
            match denied {
                Some((runbook, rule)) => crate::policy::denied(req, &runbook, rule),
                None => req.audit_rejected(refusal.text()),
            }
            return Err(refusal);
        }
    };
    tracing::Span::current().record("runbook", accepted.runbook.as_str());

    let mut message = req.message(catalog, JobKind::Run, accepted.runbook, accepted.params);
    message.rerun_of = rerun_of;
    message.secret_params = catalog
        .get(&message.runbook)
        .map(|rb| rb.secret_params())
        .unwrap_or_default();
    tracing::Span::current().record("job_id", tracing::field::display(message.job_id));
    // With a bot token the runner posts the job card: the caller alone is told "queued". A
    // typed secret must not reach the channel: an in-channel answer shows the command as typed.
    let ack = match state.slack_api {
        Some(_) => Reply::queued(&message),
        None if message.has_secret_values() => Reply::acknowledgement_to_requester(&message),
        None => Reply::acknowledgement(&message),
    };
    match enqueue(state, &message, req.deadline).await {
        Ok(Queued::Before) => {
            crate::metrics::replayed();
            Ok(ack)
        }
        Ok(Queued::Now) => {
            crate::metrics::accepted();
            let traceparent = message.traceparent.as_deref().unwrap_or_default();
            let trace_id = chatops_shared::telemetry::trace::trace_id(traceparent);
            tracing::info!(trace_id, "job queued");
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
        Err(EnqueueError::TooLarge { bytes }) => {
            crate::metrics::rejected("too_large");
            tracing::info!(
                bytes,
                "command rejected: its job message is too large to queue"
            );
            let refusal = Refusal::TooLarge { bytes };
            req.audit_rejected(refusal.text());
            Err(refusal)
        }
        Err(EnqueueError::Deadline) => {
            crate::metrics::queue_deadline();
            tracing::warn!("job not confirmed by the queue before the acknowledgement deadline");
            Err(Refusal::OutOfTime {
                text: catalog.masked_command(&req.cmd.text),
            })
        }
        Err(e) => {
            crate::metrics::queue_unavailable();
            tracing::error!(error = %e, "could not queue job");
            Err(Refusal::QueueDown {
                text: catalog.masked_command(&req.cmd.text),
            })
        }
    }
}
