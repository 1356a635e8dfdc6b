//! The notifier without Slack: writes each message to the log. The local demo, and the
//! fallback when neither a `response_url` nor a webhook can be used, rely on it.

use super::{Notifier, NotifyError, Update, render};
use async_trait::async_trait;
use chatops_shared::job::JobMessage;

/// Logs the Slack message that would have been sent, at info level.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogNotifier;

#[async_trait]
impl Notifier for LogNotifier {
    async fn notify(&self, job: &JobMessage, update: &Update) -> Result<(), NotifyError> {
        let text = render::text(job, update);
        tracing::info!(job_id = %job.job_id, runbook = %job.runbook, "slack message: {text}");
        Ok(())
    }
}
