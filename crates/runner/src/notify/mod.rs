//! Notifiers tell Slack how a job is going: with a bot token, one job card per job updated in
//! place (`bot`); otherwise through the command's `response_url` while it is
//! usable, then the incoming webhook; without any Slack configuration, the log.

pub mod bot;
pub mod log;
pub mod render;
pub mod slack;

use crate::executor::Outcome;
use async_trait::async_trait;
use chatops_shared::job::JobMessage;
use time::OffsetDateTime;

/// A status change of a job, in the order the requester sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// The job started (queued was the ingress's acknowledgement).
    Running { started_at: OffsetDateTime },
    /// The job is not running yet: Azure Automation holds it back or refused its start for
    /// now (its limits); `reason` says which, in plain words.
    Waiting { reason: String },
    /// The job ended.
    Finished(Outcome),
    /// A plain notice about the command (a stop that found nothing to stop).
    Notice(String),
}

impl Update {
    /// Whether a notifier may forget what it keeps about the job once this update was
    /// delivered with `result`: after the last update, unless it is to be tried again.
    pub fn is_last<T>(&self, result: &Result<T, NotifyError>) -> bool {
        matches!(self, Update::Finished(_))
            && !matches!(
                result,
                Err(NotifyError::Transient(_) | NotifyError::RateLimited { .. })
            )
    }
}

/// Why a notification was not delivered.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum NotifyError {
    /// Worth trying again later (network, 5xx).
    #[error("Slack unavailable: {0}")]
    Transient(String),
    /// Slack answered 429 and asked us to wait longer than one call waits: try again after
    /// `retry_after`, not before.
    #[error("Slack rate limited: {detail}")]
    RateLimited {
        retry_after: std::time::Duration,
        detail: String,
    },
    /// Trying again will not help (for example the webhook's channel was archived).
    #[error("Slack refused the message: {0}")]
    Permanent(String),
}

/// Delivers status updates for a job.
#[async_trait]
pub trait Notifier: Send + Sync {
    async fn notify(&self, job: &JobMessage, update: &Update) -> Result<(), NotifyError>;

    /// How often a running job's new output may be shown ([`Notifier::output`]); `None` (the
    /// default): this notifier shows output only with the final status.
    fn live_tail(&self) -> Option<std::time::Duration> {
        None
    }

    /// New output of a running job, batched by the worker: at most one call per
    /// [`Notifier::live_tail`] interval, whole lines, and a last call (`last`) with what was
    /// left when the output ended, just before the final status. Best effort: what cannot be
    /// shown is counted and said, never retried at the cost of the final status.
    async fn output(&self, _job: &JobMessage, _text: &str, _last: bool) {}
}
