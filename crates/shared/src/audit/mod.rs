//! The audit log: append-only JSON lines in Blob storage, one append blob per writer per day,
//! each line carrying the hash of its writer's previous line. See `docs/audit.md`.
//!
//! The services call [`AuditLog::record`], which never waits on storage: lines are written by a
//! background task that batches and retries them.
//!
//! - [`line`]: the line format and the hash chain; [`naming`]: blob names and writer ids.
//! - `pending`, `writer`: the queue of waiting lines and the task that appends them.
//! - [`verify`]: checks the chains; [`export`]: the lines of a period, as stored.

pub mod export;
pub mod line;
pub mod naming;
mod pending;
pub mod verify;
mod writer;

#[cfg(test)]
pub(crate) mod memory;
#[cfg(test)]
mod tests;

pub use naming::writer_id;
pub use writer::WriterSettings;

use crate::blob::BlobStore;
use pending::{Entry, Pending};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

/// Environment variable naming the audit container.
pub const AUDIT_CONTAINER_VAR: &str = "CHATOPS_AUDIT_CONTAINER";
/// Default audit container.
pub const DEFAULT_AUDIT_CONTAINER: &str = "chatops-audit";

/// Where the audit container is: the blob settings with `CHATOPS_AUDIT_CONTAINER`. Lines are
/// written in the background, so with the patient budget.
pub fn settings_from_env(
    env: &dyn crate::config::EnvSource,
) -> Result<crate::blob::settings::BlobSettings, crate::config::ConfigError> {
    crate::blob::settings::BlobSettings::from_env(
        env,
        crate::queue::retry::RetryBudget::background(),
        AUDIT_CONTAINER_VAR,
        DEFAULT_AUDIT_CONTAINER,
    )
}

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

/// Where audit lines go. Cheap to clone. [`AuditLog::new`] starts the writer;
/// [`AuditLog::discard`] drops every line (for tests that do not look at the log).
#[derive(Clone, Default)]
pub struct AuditLog {
    pending: Option<Arc<Pending>>,
}

impl AuditLog {
    /// Starts the writer task (on the current Tokio runtime), appending to `store` (the audit
    /// container, which must exist: `ensure_container` at start, as for the records) under
    /// `writer_id` (see [`writer_id`]; one per process). Stop it with [`AuditWriter::shutdown`].
    pub fn new(store: Arc<dyn BlobStore>, writer_id: String) -> (AuditLog, AuditWriter) {
        AuditLog::with_settings(store, writer_id, WriterSettings::default())
    }

    /// [`AuditLog::new`] with other limits and waits.
    pub fn with_settings(
        store: Arc<dyn BlobStore>,
        writer_id: String,
        settings: WriterSettings,
    ) -> (AuditLog, AuditWriter) {
        let pending = Arc::new(Pending::new(settings.max_waiting));
        let writer = writer::Writer::new(store, writer_id, pending.clone(), settings);
        let task = tokio::spawn(writer.run());
        (
            AuditLog {
                pending: Some(pending.clone()),
            },
            AuditWriter { pending, task },
        )
    }

    /// A log that writes nothing.
    pub fn discard() -> Self {
        AuditLog { pending: None }
    }

    /// Queues `event`, stamped with the current time, for writing; never waits.
    pub fn record(&self, event: AuditEvent) {
        self.record_at(OffsetDateTime::now_utc(), event);
    }

    fn record_at(&self, at: OffsetDateTime, event: AuditEvent) {
        if let Some(pending) = &self.pending
            && !pending.push(Entry { at, event })
        {
            tracing::error!("the audit writer has stopped: an audit line was not written");
        }
    }
}

/// The running writer task.
pub struct AuditWriter {
    pending: Arc<Pending>,
    task: tokio::task::JoinHandle<()>,
}

impl AuditWriter {
    /// Stops taking lines and writes those waiting, for at most `within`; returns how many
    /// lines were not written (then logged as an error).
    pub async fn shutdown(mut self, within: Duration) -> usize {
        self.pending.close();
        if tokio::time::timeout(within, &mut self.task).await.is_ok() {
            return 0;
        }
        self.task.abort();
        let lost = self.pending.waiting() + self.pending.in_flight.load(Ordering::SeqCst);
        tracing::error!(
            lost,
            "audit lines not written at shutdown: audit storage did not take them in time"
        );
        lost
    }
}
