//! Reporting a job's progress and its final status to the requester.

use super::Worker;
use super::kept::Kept;
use super::mask::SecretValues;
use crate::executor::{Outcome, Progress};
use crate::notify::{NotifyError, Update};
use chatops_shared::backoff::Backoff;
use chatops_shared::job::JobMessage;
use chatops_shared::records::record_name_of;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// next to the job's record too (`kept`). `ended` is set when the executor says the job
    /// ended ([`Progress::Ended`]).
    pub(super) async fn reporting<T, Fut>(
        &self,
        job: &JobMessage,
        keep: bool,
        ended: &AtomicBool,
        call: impl FnOnce(UnboundedSender<Progress>) -> Fut,
    ) -> T
    where
        Fut: Future<Output = T>,
    {
        let (progress_tx, mut progress_rx) = tokio::sync::mpsc::unbounded_channel();
        let run = call(progress_tx);
        let tail = self.notifier.live_tail();
        let kept = (keep && self.settings.output_keep > 0).then(|| {
            Kept::new(
                self.records.clone(),
                record_name_of(job),
                self.settings.output_keep,
            )
        });
        let batching = tail.is_some() || kept.is_some();
        let secrets = self.secret_values(job);
        let every = tail.unwrap_or(KEEP_INTERVAL);
        let kept = tokio::sync::Mutex::new(kept);
        let report = async {
            let mut batch = Batch::default();
            let mut tick = batching.then_some(every).map(|every| {
                let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick
            });
            // What to post or keep, in order, and the step under way (with whether it is
            // output): progress is taken all the while, so a slow Slack or storage holds no more
            // of a script's output than a batch, however fast the script writes.
            let mut todo: VecDeque<Step> = VecDeque::new();
            let mut doing: Option<(bool, StepFuture<'_>)> = None;
            let mut open = true;
            loop {
                if doing.is_none() {
                    doing = todo.pop_front().map(|step| {
                        let output = matches!(step, Step::Output { .. });
                        let future: StepFuture<'_> =
                            Box::pin(self.take_step(job, &kept, tail.is_some(), &secrets, step));
                        (output, future)
                    });
                }
                if !open && doing.is_none() {
                    break;
                }
                let output_due = doing.as_ref().is_some_and(|(output, _)| *output)
                    || todo.iter().any(|step| matches!(step, Step::Output { .. }));
                let ticked = async {
                    match tick.as_mut() {
                        Some(tick) => {
                            tick.tick().await;
                        }
                        None => std::future::pending().await,
                    }
                };
                let busy = async {
                    match doing.as_mut() {
                        Some((_, step)) => step.await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    progress = progress_rx.recv(), if open => match progress {
                        Some(Progress::Running { started_at, pgid }) => {
                            todo.push_back(Step::Running { started_at, pgid });
                        }
                        Some(Progress::Waiting { reason }) => todo.push_back(Step::Waiting { reason }),
                        Some(Progress::Ended) => ended.store(true, Ordering::Release),
                        Some(Progress::Output { text }) => {
                            if batching {
                                batch.push(&text);
                            }
                        }
                        None => {
                            open = false;
                            let text = batch.take_all();
                            if !text.is_empty() {
                                todo.push_back(Step::Output { text, last: true });
                            }
                        }
                    },
                    () = ticked, if !batch.is_empty() && !output_due => {
                        let mut text = batch.take_lines();
                        // A secret value's beginning waits for the rest of it (masked whole).
                        let held = text.split_off(secrets.safe_cut(&text));
                        batch.put_back(held);
                        if !text.is_empty() {
                            todo.push_back(Step::Output { text, last: false });
                        }
                    }
                    () = busy => doing = None,
                }
            }
        };
        let (result, ()) = tokio::join!(run, report);
        result
    }

    /// Records and posts one step of a job's progress.
    async fn take_step(
        &self,
        job: &JobMessage,
        kept: &tokio::sync::Mutex<Option<Kept>>,
        tail: bool,
        secrets: &SecretValues,
        step: Step,
    ) {
        match step {
            Step::Running { started_at, pgid } => {
                Box::pin(self.record_started(job, started_at, pgid)).await;
                if let Err(e) = self
                    .notifier
                    .notify(job, &Update::Running { started_at })
                    .await
                {
                    tracing::warn!(error = %e, "could not post the running status");
                }
            }
            Step::Waiting { reason } => {
                if let Err(e) = self.notifier.notify(job, &Update::Waiting { reason }).await {
                    tracing::warn!(error = %e, "could not post the job's status");
                }
            }
            Step::Output { text, last } => {
                let text = secrets.mask(&text);
                if let Some(kept) = kept.lock().await.as_mut() {
                    Box::pin(kept.append(&text)).await;
                }
                if tail && !text.is_empty() {
                    self.notifier.output(job, &text, last).await;
                }
            }
        }
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

/// One thing to record or post about a job's progress, in the order it came.
enum Step {
    Running {
        started_at: time::OffsetDateTime,
        pgid: Option<i32>,
    },
    Waiting {
        reason: String,
    },
    /// A batch of output for the kept output and the live tail; `last` when the output ended.
    Output {
        text: String,
        last: bool,
    },
}

type StepFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// The most output a batch gives at once (and twice it, the most it holds): output written
/// faster than it is kept and posted is skipped from the front of the batch, and the batch
/// says how much. Under the 4 MiB of one Append Block.
const BATCH_MAX: usize = 2 * 1024 * 1024;

/// Output not yet kept or given to the live tail.
#[derive(Debug, Default)]
struct Batch {
    text: String,
    /// Bytes skipped since the last batch was taken.
    skipped: u64,
}

impl Batch {
    fn push(&mut self, text: &str) {
        self.text.push_str(text);
        // Cut only past twice the limit, so that a fast stream is moved once per limit's worth.
        if self.text.len() > 2 * BATCH_MAX {
            self.keep_last(BATCH_MAX);
        }
    }

    fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Drops the front, keeping at most the last `max` bytes (from a character's start).
    fn keep_last(&mut self, max: usize) {
        let Some(mut cut) = self.text.len().checked_sub(max) else {
            return;
        };
        while !self.text.is_char_boundary(cut) {
            cut += 1;
        }
        // At a line's start when one is near, so that what is kept starts with a whole line
        // (and no secret value is kept in part, unmasked).
        let bytes = self.text.as_bytes();
        let before = cut.checked_sub(1).and_then(|i| bytes.get(i).copied());
        cut += chatops_shared::body::cut_start(before, bytes.get(cut..).unwrap_or_default());
        self.text.drain(..cut);
        self.skipped += cut as u64;
    }

    /// What was skipped, said at the start of a batch.
    fn with_skip_note(&mut self, text: String) -> String {
        match std::mem::take(&mut self.skipped) {
            0 => text,
            skipped => format!(
                "[... {skipped} bytes of output skipped here: the script wrote faster than its output could be kept and posted ...]\n{text}"
            ),
        }
    }

    /// The whole lines so far (a partial last line waits for its end), or all of it when it
    /// holds no line break at all (a long line, or output without line breaks); at most
    /// [`BATCH_MAX`] bytes, the newest.
    fn take_lines(&mut self) -> String {
        self.keep_last(BATCH_MAX);
        let text = match self.text.rfind('\n') {
            Some(end) => {
                let rest = self.text.split_off(end + 1);
                std::mem::replace(&mut self.text, rest)
            }
            None => std::mem::take(&mut self.text),
        };
        self.with_skip_note(text)
    }

    /// Puts `text`, taken last, back in front of what came since.
    fn put_back(&mut self, text: String) {
        if !text.is_empty() {
            self.text.insert_str(0, &text);
        }
    }

    fn take_all(&mut self) -> String {
        self.keep_last(BATCH_MAX);
        let text = std::mem::take(&mut self.text);
        self.with_skip_note(text)
    }
}

#[cfg(test)]
mod tests {
    use super::{BATCH_MAX, Batch};

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

    #[test]
    fn a_batch_cut_at_a_line_start_keeps_that_line() {
        let first = "first\n";
        let rest = format!("{}\n", "x".repeat(BATCH_MAX - first.len() - 1));
        // Exactly the limit: nothing is cut.
        let mut batch = Batch::default();
        batch.push(first);
        batch.push(&rest);
        assert_eq!(batch.take_lines(), format!("{first}{rest}"));
        // A line more in front: the cut falls at the start of `first`, which is kept.
        let mut batch = Batch::default();
        batch.push("dropped\n");
        batch.push(first);
        batch.push(&rest);
        let taken = batch.take_lines();
        let (note, kept) = taken.split_once('\n').unwrap_or_default();
        assert!(note.contains("8 bytes of output skipped"), "{note}");
        assert_eq!(kept, format!("{first}{rest}"));
    }

    #[test]
    fn a_batch_holds_at_most_twice_its_limit_and_says_what_it_skipped() {
        let mut batch = Batch::default();
        let line = format!("{}\n", "é".repeat(511));
        let mut pushed = 0;
        while pushed < 5 * BATCH_MAX {
            batch.push(&line);
            pushed += line.len();
            assert!(batch.text.len() <= 2 * BATCH_MAX + line.len());
        }
        let taken = batch.take_lines();
        let (note, rest) = taken.split_once('\n').unwrap_or_default();
        let skipped = pushed - (taken.len() - note.len() - 1);
        assert!(
            note.contains(&format!("{skipped} bytes of output skipped")),
            "{note}"
        );
        assert!(rest.len() <= BATCH_MAX && rest.ends_with('\n'));
        assert_eq!(rest.len() % line.len(), 0, "whole lines only");
        assert!(batch.is_empty());
        batch.push("next\n");
        assert_eq!(batch.take_all(), "next\n", "said once");
    }
}
