//! Keeps a taken message invisible while its job runs and its final status is delivered.

use chatops_shared::job;
use chatops_shared::queue::{JobQueue, QueueError, Received};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::{Mutex, oneshot};
use tokio::time::Instant;
use tracing::Instrument;

/// The shortest visibility timeout the runner accepts. Extensions start a third of it after the
/// last success, and one extension call takes at most `RetryBudget::background().worst_case()`
/// (17.4 s): at 60 s, two calls in a row can fail in full and the third still lands in time.
pub const MIN_VISIBILITY: Duration = Duration::from_secs(60);

/// The wait before trying again after a failed extension.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// Keeps a message invisible while its job runs. Each extension is due a third of the
/// visibility after the last successful one, and is retried promptly when it fails. The message
/// (with its newest pop receipt) is shared with the worker, so it can also be rewritten
/// ([`Extender::mark_started`]) without racing an extension. Stopped by [`Extender::stop`],
/// which waits for an extension under way, so the newest pop receipt is never lost; aborted if
/// dropped without that.
pub(super) struct Extender {
    queue: Arc<dyn JobQueue>,
    message: Arc<Mutex<Received>>,
    visibility: Duration,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Extender {
    pub(super) fn start(queue: Arc<dyn JobQueue>, message: Received, visibility: Duration) -> Self {
        let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
        let every = (visibility / 3).max(Duration::from_millis(200));
        let message = Arc::new(Mutex::new(message));
        let task = tokio::spawn({
            let queue = queue.clone();
            let message = message.clone();
            async move {
                let mut due = Instant::now() + every;
                loop {
                    tokio::select! {
                        _ = &mut stop_rx => return,
                        () = tokio::time::sleep_until(due) => {}
                    }
                    let mut message = message.lock().await;
                    match queue.extend(&message, visibility).await {
                        Ok(pop_receipt) => {
                            message.pop_receipt = pop_receipt;
                            due = Instant::now() + every;
                        }
                        Err(QueueError::MessageGone) => {
                            tracing::error!("lost hold of the message (its pop receipt is no longer valid): another runner may take it");
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "could not extend the message's invisibility; trying again");
                            due = Instant::now() + RETRY_AFTER_FAILURE;
                        }
                    }
                }
            }
            .in_current_span()
        });
        Extender {
            queue,
            message,
            visibility,
            stop: Some(stop_tx),
            task: Some(task),
        }
    }

    /// Writes `started_at` into the message on the queue (every other field kept), so that a
    /// later delivery knows the job was started.
    pub(super) async fn mark_started(&self, at: OffsetDateTime) -> Result<(), String> {
        let mut message = self.message.lock().await;
        let text = job::mark_started(&message.text, at).map_err(|e| e.to_string())?;
        let pop_receipt = self
            .queue
            .replace(&message, &text, self.visibility)
            .await
            .map_err(|e| e.to_string())?;
        message.pop_receipt = pop_receipt;
        message.text = text;
        Ok(())
    }

    /// Stops extending and returns the message with its newest pop receipt.
    pub(super) async fn stop(mut self) -> Received {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            // It finishes the extension under way, if any, then ends.
            let _ = task.await;
        }
        self.message.lock().await.clone()
    }
}

impl Drop for Extender {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatops_shared::queue::azure::RetryBudget;

    #[test]
    fn two_failed_extensions_in_a_row_still_leave_time_at_the_minimum_visibility() {
        let call = RetryBudget::background().worst_case();
        let third_attempt_starts =
            MIN_VISIBILITY / 3 + call + RETRY_AFTER_FAILURE + call + RETRY_AFTER_FAILURE;
        assert!(
            third_attempt_starts < MIN_VISIBILITY,
            "{third_attempt_starts:?}"
        );
    }
}
