//! The audit log: append-only JSON lines in Blob storage, one append blob per writer per day,
//! each line carrying the hash of its writer's previous line. See `docs/audit.md`.
//!
//! The services call [`AuditLog::record`], which never waits on storage: lines are written by a
//! background task that batches and retries them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Environment variable naming the audit container.
pub const AUDIT_CONTAINER_VAR: &str = "CHATOPS_AUDIT_CONTAINER";
/// Default audit container.
pub const DEFAULT_AUDIT_CONTAINER: &str = "chatops-audit";

/// What happened. One line of the log is one event, with who wrote it and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AuditEvent {
    /// The ingress queued a job.
    Accepted {
        job_id: Uuid,
        runbook: String,
        params: BTreeMap<String, String>,
        user_id: String,
        channel_id: String,
        /// Set for `/runbook rerun`: the job run again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rerun_of: Option<Uuid>,
    },
    /// A command that could not be read or named nothing runnable (the reason as the user saw it).
    Rejected {
        user_id: String,
        channel_id: String,
        text: String,
        reason: String,
    },
    /// A command refused by an access rule (`allow`, `stop_allow`); `rule` names it.
    Denied {
        user_id: String,
        channel_id: String,
        runbook: String,
        rule: String,
    },
    /// A runner started the job (or took over one started elsewhere).
    Started { job_id: Uuid, runner: String },
    /// The job ended; `state` is its final state (`completed`, `failed`, …, `expired`).
    Ended {
        job_id: Uuid,
        state: String,
        runner: String,
    },
    /// Someone asked to stop the job.
    StopRequested {
        job_id: Uuid,
        by: String,
        stop_job_id: Uuid,
    },
    /// The job was stopped at someone's request.
    Stopped { job_id: Uuid, by: String },
}

/// Where audit lines go. Cheap to clone. The real writer is built by [`AuditLog::new`] (to be
/// written); [`AuditLog::discard`] drops every line (for tests that do not look at the log).
#[derive(Clone, Default)]
pub struct AuditLog {
    sender: Option<tokio::sync::mpsc::UnboundedSender<AuditEvent>>,
}

impl AuditLog {
    /// A log that writes nothing.
    pub fn discard() -> Self {
        AuditLog { sender: None }
    }

    /// Queues `event` for writing; never waits.
    pub fn record(&self, event: AuditEvent) {
        if let Some(sender) = &self.sender
            && sender.send(event).is_err()
        {
            tracing::error!("the audit writer has stopped: an audit line was not written");
        }
    }
}

impl AuditLog {
    /// A log whose events go to the returned receiver instead of storage: for tests that check
    /// what a service records.
    pub fn capture() -> (Self, tokio::sync::mpsc::UnboundedReceiver<AuditEvent>) {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        (
            AuditLog {
                sender: Some(sender),
            },
            receiver,
        )
    }
}
