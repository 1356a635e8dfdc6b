//! Reporting a job's progress and its final status to the requester.

use super::Worker;
use crate::executor::{Outcome, Progress};
use crate::notify::{NotifyError, Update};
use chatops_shared::backoff::Backoff;
use chatops_shared::job::JobMessage;
use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

impl Worker {
    /// Runs an executor call (`call` gets the progress sender) and posts the `running` and
    /// `waiting` statuses it reports as it goes.
    pub(super) async fn reporting<T, Fut>(
        &self,
        job: &JobMessage,
        call: impl FnOnce(UnboundedSender<Progress>) -> Fut,
    ) -> T
    where
        Fut: Future<Output = T>,
    {
        let (progress_tx, mut progress_rx) = tokio::sync::mpsc::unbounded_channel();
        let run = call(progress_tx);
        let report = async {
            while let Some(progress) = progress_rx.recv().await {
                let update = match progress {
                    Progress::Running { started_at, pgid } => {
                        self.record_started(job, started_at, pgid).await;
                        Update::Running { started_at }
                    }
                    Progress::Waiting { reason } => Update::Waiting { reason },
                };
                if let Err(e) = self.notifier.notify(job, &update).await {
                    tracing::warn!(error = %e, "could not post the job's status");
                }
            }
        };
        let (result, ()) = tokio::join!(run, report);
        result
    }

    /// Delivers the final status, retrying transient failures for `final_notify_patience`.
    pub(super) async fn notify_final(
        &self,
        job: &JobMessage,
        outcome: &Outcome,
    ) -> Result<(), NotifyError> {
        let update = Update::Finished(outcome.clone());
        let deadline = tokio::time::Instant::now() + self.settings.final_notify_patience;
        let backoff = Backoff {
            first: Duration::from_millis(500),
            max: Duration::from_secs(15),
            jitter: false,
        };
        let mut retry = 0;
        loop {
            let wait = backoff.wait(retry);
            let pause = match self.notifier.notify(job, &update).await {
                Ok(()) => return Ok(()),
                Err(NotifyError::Transient(e)) => {
                    tracing::warn!(error = %e, "final notification failed; retrying");
                    wait
                }
                Err(NotifyError::RateLimited {
                    retry_after,
                    detail,
                }) => {
                    tracing::warn!(%detail, "final notification rate limited; waiting as Slack asked");
                    retry_after.max(wait)
                }
                Err(e @ NotifyError::Permanent(_)) => return Err(e),
            };
            if tokio::time::Instant::now()
                .checked_add(pause)
                .is_none_or(|resume| resume >= deadline)
            {
                return Err(NotifyError::Transient(format!(
                    "still failing after {}s",
                    self.settings.final_notify_patience.as_secs()
                )));
            }
            tokio::time::sleep(pause).await;
            retry = retry.saturating_add(1);
        }
    }
}
