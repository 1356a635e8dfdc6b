//! Reporting a job's progress and its final status to the requester.

use super::Worker;
use super::kept::Kept;
use crate::executor::{Outcome, Progress};
use crate::notify::{NotifyError, Update};
use chatops_shared::backoff::Backoff;
use chatops_shared::job::JobMessage;
use chatops_shared::records::record_name_of;
use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

/// How often output is kept when there is no live tail.
const KEEP_INTERVAL: Duration = Duration::from_secs(5);

impl Worker {
    /// Runs an executor call (`call` gets the progress sender) and posts the `running` and
    /// `waiting` statuses it reports as it goes; its new output goes to the notifier's live
    /// tail in batches, at most one per
    /// [`Notifier::live_tail`](crate::notify::Notifier::live_tail) interval, and what is left
    /// when the call ends in a last batch. With `keep`, the batches are kept whole
    /// next to the job's record too (`kept`).
    pub(super) async fn reporting<T, Fut>(
        &self,
        job: &JobMessage,
        keep: bool,
        call: impl FnOnce(UnboundedSender<Progress>) -> Fut,
    ) -> T
    where
        Fut: Future<Output = T>,
    {
        let (progress_tx, mut progress_rx) = tokio::sync::mpsc::unbounded_channel();
        let run = call(progress_tx);
        let tail = self.notifier.live_tail();
        let mut kept = (keep && self.settings.output_keep > 0).then(|| {
            Kept::new(
                self.records.clone(),
                record_name_of(job),
                self.settings.output_keep,
            )
        });
        let batching = tail.is_some() || kept.is_some();
        let every = tail.unwrap_or(KEEP_INTERVAL);
        let report = async {
            let mut batch = Batch::default();
            let mut tick = batching.then_some(every).map(|every| {
                let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick
            });
            loop {
                let ticked = async {
                    match tick.as_mut() {
                        Some(tick) => {
                            tick.tick().await;
                        }
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    progress = progress_rx.recv() => match progress {
                        Some(Progress::Running { started_at, pgid }) => {
                            Box::pin(self.record_started(job, started_at, pgid)).await;
                            if let Err(e) = self
                                .notifier
                                .notify(job, &Update::Running { started_at })
                                .await
                            {
                                tracing::warn!(error = %e, "could not post the running status");
                            }
                        }
                        Some(Progress::Waiting { reason }) => {
                            if let Err(e) = self
                                .notifier
                                .notify(job, &Update::Waiting { reason })
                                .await
                            {
                                tracing::warn!(error = %e, "could not post the job's status");
                            }
                        }
                        Some(Progress::Output { text }) => {
                            if batching {
                                batch.push(&text);
                            }
                        }
                        None => break,
                    },
                    () = ticked, if !batch.is_empty() => {
                        let text = batch.take_lines();
                        if let Some(kept) = kept.as_mut() {
                            Box::pin(kept.append(&text)).await;
                        }
                        if tail.is_some() && !text.is_empty() {
                            self.notifier.output(job, &text, false).await;
                        }
                    }
                }
            }
            let rest = batch.take_all();
            if let Some(kept) = kept.as_mut() {
                Box::pin(kept.append(&rest)).await;
            }
            if tail.is_some() && !rest.is_empty() {
                self.notifier.output(job, &rest, true).await;
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

/// Output not yet given to the live tail.
#[derive(Debug, Default)]
struct Batch(String);

impl Batch {
    fn push(&mut self, text: &str) {
        self.0.push_str(text);
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The whole lines so far (a partial last line waits for its end), or all of it when it
    /// holds no line break at all (a long line, or output without line breaks).
    fn take_lines(&mut self) -> String {
        match self.0.rfind('\n') {
            Some(end) => {
                let rest = self.0.split_off(end + 1);
                std::mem::replace(&mut self.0, rest)
            }
            None => self.take_all(),
        }
    }

    fn take_all(&mut self) -> String {
        std::mem::take(&mut self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::Batch;

    #[test]
    fn a_batch_gives_whole_lines_and_keeps_a_partial_one() {
        let mut batch = Batch::default();
        batch.push("one\ntw");
        assert_eq!(batch.take_lines(), "one\n");
        batch.push("o\nthr");
        assert_eq!(batch.take_lines(), "two\n");
        assert_eq!(batch.take_lines(), "thr");
        assert!(batch.is_empty());
        batch.push("x");
        assert_eq!(batch.take_all(), "x");
    }
}
