//! The loop the runner binary runs: poll, hand messages to jobs, back off when idle, and stop
//! cleanly.
//!
//! A delivery of a job this runner holds goes to that job whether or not a slot is free. While
//! every slot is busy the loop does not poll at all, so such a delivery then waits on the queue
//! (or goes to another runner).

use super::{Delivery, Worker};
use chatops_shared::queue::Received;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

impl Worker {
    /// Polls and handles messages until `shutdown` completes, then starts no more jobs, gives
    /// in-flight jobs `shutdown_grace` (from the shutdown, not from when the last poll ends)
    /// to finish and hands over those that did not (`leave`).
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send) {
        let (stop_tx, stop_rx) = watch::channel(None);
        let leaving = self.leaving.clone();
        let grace = self.settings.shutdown_grace;
        let watcher = async move {
            shutdown.await;
            // At once, for jobs between their message and their start too.
            leaving.stopping();
            let _ = stop_tx.send(Some(Instant::now() + grace));
            std::future::pending::<()>().await;
        };
        tokio::select! {
            () = watcher => {}
            () = self.poll_until(stop_rx) => {}
        }
    }

    /// `stop`: the end of the shutdown grace, once shutdown began.
    async fn poll_until(&self, stop: watch::Receiver<Option<Instant>>) {
        let slots = Arc::new(Semaphore::new(self.settings.concurrency.max(1)));
        let mut in_flight = tokio::task::JoinSet::new();
        let mut idle = Duration::from_millis(50);
        loop {
            // Reap finished jobs so the set does not grow.
            while in_flight.try_join_next().is_some() {}
            let permit = tokio::select! {
                () = stopped(&stop) => break,
                permit = slots.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
            };
            let free = slots.available_permits() + 1;
            let batch = u8::try_from(free.min(32)).unwrap_or(32);
            // Not raced against shutdown: messages the service already handed out must be
            // handled or handed back, not left invisible.
            let received = self.queue.receive(batch, self.settings.visibility).await;
            let grace_end = *stop.borrow();
            if let Some(grace_end) = grace_end {
                if let Ok(messages) = received {
                    let new: Vec<Received> = messages
                        .into_iter()
                        .filter_map(|m| self.route(m))
                        .map(Delivery::into_message)
                        .collect();
                    let hand_back = self.hand_back(new);
                    // At least the hand-over limit, also when the poll outlasted the grace.
                    let limit = grace_end.max(Instant::now() + HAND_OVER_LIMIT);
                    if tokio::time::timeout_at(limit, hand_back).await.is_err() {
                        tracing::warn!(
                            "could not hand every message back in time; the rest return when their visibility ends"
                        );
                    }
                }
                break;
            }
            let wait = match received {
                Ok(messages) if messages.is_empty() => {
                    let wait = idle;
                    idle = (idle * 2).min(self.settings.max_idle_poll);
                    wait
                }
                Ok(messages) => {
                    idle = Duration::from_millis(50);
                    let mut permit = Some(permit);
                    for message in messages {
                        let Some(delivery) = self.route(message) else {
                            continue;
                        };
                        let permit = match permit.take() {
                            Some(p) => p,
                            // We asked for no more messages than free slots.
                            None => match slots.clone().try_acquire_owned() {
                                Ok(p) => p,
                                Err(_) => {
                                    self.hand_back(vec![delivery.into_message()]).await;
                                    continue;
                                }
                            },
                        };
                        let worker = self.clone();
                        in_flight.spawn(async move {
                            worker.see_through(delivery).await;
                            drop(permit);
                        });
                    }
                    Duration::ZERO
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the queue; backing off");
                    idle = (idle * 2).clamp(Duration::from_millis(500), Duration::from_secs(5));
                    idle
                }
            };
            if !wait.is_zero() {
                tokio::select! {
                    () = stopped(&stop) => break,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
        tracing::info!(
            jobs = in_flight.len(),
            "stopped taking messages; waiting for jobs in flight"
        );
        let grace_end = stop
            .borrow()
            .unwrap_or_else(|| Instant::now() + self.settings.shutdown_grace);
        if drained_by(&mut in_flight, grace_end).await {
            return;
        }
        tracing::warn!(
            jobs = in_flight.len(),
            "jobs still running after the shutdown grace; handing them over to the next runner"
        );
        self.leaving.now();
        if !drained_by(&mut in_flight, Instant::now() + HAND_OVER_LIMIT).await {
            tracing::warn!(
                jobs = in_flight.len(),
                "jobs not handed over in time; their messages return to the queue when their invisibility ends"
            );
            in_flight.abort_all();
        }
    }

    /// Makes messages taken but not handled visible again at once, for another runner.
    pub(super) async fn hand_back(&self, messages: Vec<Received>) {
        for message in messages {
            if let Err(e) = self.queue.extend(&message, Duration::ZERO).await {
                tracing::warn!(error = %e, message_id = %message.message_id, "could not hand a message back; it returns when its visibility ends");
            }
        }
    }
}

/// How long jobs may take to hand themselves over after the shutdown grace (a record write and
/// a queue update each), or to finish what does not hand over (the checks before a job is
/// owned, the report of a job that has its outcome). The Azure template gives a replica 30 s
/// beyond the grace before it is killed.
const HAND_OVER_LIMIT: Duration = Duration::from_secs(10);

/// Whether every job in `in_flight` ended by `deadline`.
async fn drained_by(in_flight: &mut tokio::task::JoinSet<()>, deadline: Instant) -> bool {
    let drain = async { while in_flight.join_next().await.is_some() {} };
    tokio::time::timeout_at(deadline, drain).await.is_ok()
}

async fn stopped(stop: &watch::Receiver<Option<Instant>>) {
    let mut stop = stop.clone();
    let _ = stop.wait_for(Option::is_some).await;
}
