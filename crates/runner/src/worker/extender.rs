//! Keeps a taken message invisible while its job runs and its final status is delivered.

use chatops_shared::queue::{JobQueue, QueueError, Received};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, oneshot};
use tracing::Instrument;

/// Keeps a message invisible while its job runs, extending it every third of the visibility.
/// The message (with its newest pop receipt) is shared with the worker, so it can also be
/// rewritten ([`Extender::replace_text`]) without racing an extension. Stopped by
/// [`Extender::stop`], which waits for an extension under way, so the newest pop receipt is
/// never lost; aborted if dropped without that.
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
                loop {
                    tokio::select! {
                        _ = &mut stop_rx => return,
                        () = tokio::time::sleep(every) => {}
                    }
                    let mut message = message.lock().await;
                    match queue.extend(&message, visibility).await {
                        Ok(pop_receipt) => message.pop_receipt = pop_receipt,
                        Err(e) => tracing::warn!(error = %e, "could not extend the message's invisibility"),
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

    /// Replaces the message's text on the queue (and extends it).
    pub(super) async fn replace_text(&self, text: String) -> Result<(), QueueError> {
        let mut message = self.message.lock().await;
        let pop_receipt = self.queue.replace(&message, &text, self.visibility).await?;
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
