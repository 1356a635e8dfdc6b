//! Keeps a taken message invisible while its job runs and its final status is delivered, and
//! takes over the further deliveries of that job that reach this runner.

use super::held::Hold;
use chatops_shared::queue::{JobQueue, QueueError, Received};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, oneshot};
use tokio::time::Instant;
use tracing::Instrument;

/// The shortest visibility timeout the runner accepts. Extensions start a third of it after the
/// last success, and one extension call takes at most `RetryBudget::background().worst_case()`
/// (17.4 s): at 60 s, two calls in a row can fail in full and the third still lands in time.
pub const MIN_VISIBILITY: Duration = Duration::from_secs(60);

/// The wait before trying again after a failed extension.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// What the extender holds when it stops.
#[derive(Debug, Clone)]
pub(super) struct Held {
    /// The job's message, with the newest pop receipt this runner knows.
    pub(super) message: Received,
    /// The pop receipt is known to be stale and the message did not come back here: it cannot
    /// be deleted now; it reappears when the invisibility of its last (lost) update ends.
    pub(super) lost: bool,
    /// Other messages for the same job that reached this runner while it held the job: kept
    /// hidden, to be deleted with the job.
    pub(super) copies: Vec<Received>,
}

impl Held {
    /// Takes over a delivery handed to this job: a fresh delivery of its own message (new pop
    /// receipt, current text), or another message for the job.
    fn take_over(&mut self, delivery: Received) {
        if delivery.message_id == self.message.message_id {
            if self.lost {
                tracing::info!(
                    "the job's message came back to this runner: holding it again with its new pop receipt"
                );
            }
            self.message = delivery;
            self.lost = false;
        } else if let Some(copy) = self
            .copies
            .iter_mut()
            .find(|c| c.message_id == delivery.message_id)
        {
            *copy = delivery;
        } else {
            tracing::info!(
                message_id = %delivery.message_id,
                "another message for this job: holding it too, to delete it with the job"
            );
            self.copies.push(delivery);
        }
    }

    /// Extends every message held. False when a call failed in a way worth retrying soon.
    async fn extend(&mut self, queue: &dyn JobQueue, visibility: Duration) -> bool {
        let mut all_done = true;
        if !self.lost {
            match queue.extend(&self.message, visibility).await {
                Ok(pop_receipt) => self.message.pop_receipt = pop_receipt,
                Err(QueueError::MessageGone) => {
                    self.lost = true;
                    tracing::warn!(
                        "lost hold of the message: its pop receipt is no longer valid (an update's answer was lost, or another runner took it); if it comes back to this runner, this job takes it over"
                    );
                }
                Err(e) => {
                    all_done = false;
                    tracing::warn!(error = %e, "could not extend the message's invisibility; trying again");
                }
            }
        }
        let mut kept = Vec::with_capacity(self.copies.len());
        for mut copy in std::mem::take(&mut self.copies) {
            match queue.extend(&copy, visibility).await {
                Ok(pop_receipt) => {
                    copy.pop_receipt = pop_receipt;
                    kept.push(copy);
                }
                // Whoever holds it now deals with it.
                Err(QueueError::MessageGone) => {
                    tracing::debug!(message_id = %copy.message_id, "lost hold of a second message for this job");
                }
                Err(e) => {
                    all_done = false;
                    tracing::warn!(error = %e, "could not extend a second message's invisibility; trying again");
                    kept.push(copy);
                }
            }
        }
        self.copies = kept;
        all_done
    }
}

/// Keeps a message invisible while its job runs. Each extension is due a third of the
/// visibility after the last successful one, and is retried promptly when it fails. Deliveries
/// of the same job handed over by the poller ([`Hold`]) are taken over at once: after a lost
/// answer, the fresh pop receipt lets the extensions resume. The held messages are shared with
/// the worker, which reads them when the job ends. Stopped by [`Extender::stop`], which waits for an extension under way,
/// so the newest pop receipt is never lost; aborted if dropped without that.
pub(super) struct Extender {
    held: Arc<Mutex<Held>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Hold>>,
}

impl Extender {
    pub(super) fn start(
        queue: Arc<dyn JobQueue>,
        message: Received,
        mut hold: Hold,
        visibility: Duration,
    ) -> Self {
        let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
        let every = (visibility / 3).max(Duration::from_millis(200));
        let held = Arc::new(Mutex::new(Held {
            message,
            lost: false,
            copies: Vec::new(),
        }));
        let task = tokio::spawn({
            let queue = queue.clone();
            let held = held.clone();
            async move {
                let mut due = Instant::now() + every;
                loop {
                    tokio::select! {
                        _ = &mut stop_rx => return hold,
                        delivery = hold.next() => {
                            held.lock().await.take_over(delivery);
                            continue;
                        }
                        () = tokio::time::sleep_until(due) => {}
                    }
                    let mut held = held.lock().await;
                    due = Instant::now()
                        + if held.extend(queue.as_ref(), visibility).await {
                            every
                        } else {
                            RETRY_AFTER_FAILURE
                        };
                }
            }
            .in_current_span()
        });
        Extender {
            held,
            stop: Some(stop_tx),
            task: Some(task),
        }
    }

    /// This runner no longer holds the job's message (and it did not come back here).
    pub(super) async fn is_lost(&self) -> bool {
        self.held.lock().await.lost
    }

    /// Stops extending, lets go of the job, and returns what it held, with the newest pop
    /// receipts.
    pub(super) async fn stop(mut self) -> Held {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let mut late = Vec::new();
        if let Some(task) = self.task.take() {
            // It finishes the extension under way, if any, then ends.
            if let Ok(hold) = task.await {
                late = hold.release();
            }
        }
        let mut held = self.held.lock().await;
        for delivery in late {
            held.take_over(delivery);
        }
        held.clone()
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
