//! Keeps a taken message invisible while its job runs and its final status is delivered.

use chatops_shared::queue::{JobQueue, Received};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tracing::Instrument;

/// Keeps a message invisible while its job runs, extending it every third of the visibility.
/// Stopped by [`Extender::stop`], which waits for an extension under way (so the newest pop
/// receipt is never lost) and returns the message; aborted if dropped without that.
pub(super) struct Extender {
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Received>>,
}

impl Extender {
    pub(super) fn start(queue: Arc<dyn JobQueue>, message: Received, visibility: Duration) -> Self {
        let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
        let every = (visibility / 3).max(Duration::from_millis(200));
        let task = tokio::spawn(
            async move {
                let mut message = message;
                loop {
                    tokio::select! {
                        _ = &mut stop_rx => return message,
                        () = tokio::time::sleep(every) => {}
                    }
                    match queue.extend(&message, visibility).await {
                        Ok(pop_receipt) => message.pop_receipt = pop_receipt,
                        Err(e) => tracing::warn!(error = %e, "could not extend the message's invisibility"),
                    }
                }
            }
            .in_current_span(),
        );
        Extender {
            stop: Some(stop_tx),
            task: Some(task),
        }
    }

    /// Stops extending and returns the message with its newest pop receipt.
    pub(super) async fn stop(mut self) -> Option<Received> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.take()?.await.ok()
    }
}

impl Drop for Extender {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
