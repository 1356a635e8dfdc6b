//! The job's record at its start and end: marked running just before the start, given its
//! final state before the final status is posted, and marked reported after, so that a later
//! delivery of the message knows what was done. Each write is retried while storage is
//! unavailable, for at most `final_notify_patience`.

use super::{Worker, record_state};
use crate::executor::{FinalState, Outcome};
use chatops_shared::audit::AuditEvent;
use chatops_shared::backoff::Backoff;
use chatops_shared::job::JobMessage;
use chatops_shared::records::{ExecutorRef, JobRecord, JobState, RecordsError, record_name_of};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use time::OffsetDateTime;

impl Worker {
    /// The start mark: state `running`, with what the executor knows the job by, written only
    /// while this runner holds the job. A local script starts only after this write
    /// succeeded ([`Start::Go`]).
    pub(super) async fn record_running(
        &self,
        name: &str,
        reference: ExecutorRef,
    ) -> Result<Start, RecordsError> {
        let me = self.settings.runner_id.clone();
        let now = OffsetDateTime::now_utc();
        let dead_after = self.settings.dead_after();
        let mut start = Start::Go;
        let written = self
            .records
            .update(name, |record| {
                if !holds(record, &me) {
                    start = Start::TakenOver;
                    return false;
                }
                if let Some(stop) = &record.stop {
                    start = Start::StoppedBy(stop.by.clone());
                    return false;
                }
                start = Start::Go;
                if record.state == JobState::Running && record.executor.as_ref() == Some(&reference)
                {
                    // This runner's own mark, whose answer was lost.
                    return false;
                }
                record.executor = Some(reference.clone());
                record.set_state(JobState::Running, &me, now, None);
                if let Some(holder) = record.holder.as_mut() {
                    holder.beat(now, dead_after);
                }
                true
            })
            .await?;
        if let (Start::Go, Some(written)) = (&start, written) {
            self.audit(AuditEvent::Started {
                job_id: written.record.job_id,
                runner: me,
            });
        }
        Ok(start)
    }

    /// The job started (or was found started): when, and a local script's process group.
    /// Best effort: the final write sets `started_at` too.
    pub(super) async fn record_started(
        &self,
        job: &JobMessage,
        at: OffsetDateTime,
        pgid: Option<i32>,
    ) {
        let result = self
            .records
            .update(&record_name_of(job), |record| {
                let pgid_known = match (&record.executor, pgid) {
                    (Some(ExecutorRef::Local { pgid: known, .. }), Some(pgid)) => *known == pgid,
                    _ => true,
                };
                if record.started_at.is_some() && pgid_known {
                    return false;
                }
                record.started_at.get_or_insert(at);
                if let (Some(ExecutorRef::Local { pgid: known, .. }), Some(pgid)) =
                    (record.executor.as_mut(), pgid)
                {
                    *known = pgid;
                }
                true
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not write the job's start to its record");
        }
    }

    /// Writes the final state, while this runner holds the job; gives back the outcome to post,
    /// with who stopped the job when someone did. `None`: another runner took the job over (it
    /// reports it).
    pub(super) async fn record_final(
        &self,
        job: &JobMessage,
        mut outcome: Outcome,
    ) -> Result<Option<Outcome>, RecordsError> {
        let me = self.settings.runner_id.clone();
        let state = record_state(outcome.state);
        let name = record_name_of(job);
        let taken_over = AtomicBool::new(false);
        let written = self
            .retrying(|| {
                let outcome = &outcome;
                let me = &me;
                let name = &name;
                let taken_over = &taken_over;
                async move {
                    self.records
                        .update(name, |record| {
                            let other = !holds(record, me);
                            taken_over.store(other, Ordering::Relaxed);
                            if other || record.state.is_final() {
                                return false;
                            }
                            apply_outcome(record, outcome, state, me);
                            true
                        })
                        .await
                }
            })
            .await?;
        if taken_over.load(Ordering::Relaxed) {
            return Ok(None);
        }
        if let Some(written) = written {
            let record = &written.record;
            if record.state == JobState::Stopped {
                outcome.stopped_by = record.stop.as_ref().map(|s| s.by.clone());
            }
            self.audit(AuditEvent::Ended {
                job_id: record.job_id,
                state: record.state.as_str().to_owned(),
                runner: me.clone(),
            });
            if let (JobState::Stopped, Some(by)) = (record.state, &outcome.stopped_by) {
                self.audit(AuditEvent::Stopped {
                    job_id: record.job_id,
                    by: by.clone(),
                });
            }
        }
        Ok(Some(outcome))
    }

    /// Marks the final status delivered. Best effort: when it fails, a later delivery of the
    /// message posts the final status again (the message is deleted now, so that is rare).
    /// `note`: why the final status was not delivered (it went to the poison queue with the
    /// message): the job counts as reported all the same, so that a second message for it
    /// does not post it again.
    pub(super) async fn record_reported(&self, job: &JobMessage, note: Option<String>) {
        let name = record_name_of(job);
        let me = self.settings.runner_id.clone();
        let now = OffsetDateTime::now_utc();
        let result = self
            .retrying(|| {
                let name = &name;
                let me = &me;
                let note = &note;
                async move {
                    self.records
                        .update(name, |record| {
                            if record.reported || !holds(record, me) {
                                return false;
                            }
                            record.reported = true;
                            record.holder = None;
                            if let Some(note) = note {
                                let state = record.state;
                                record.set_state(state, me, now, Some(note.clone()));
                            }
                            true
                        })
                        .await
                }
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not mark the job as reported in its record");
        }
    }

    /// Runs `write` until it succeeds, fails for good, or `final_notify_patience` has passed,
    /// waiting out a storage outage (the message stays hidden meanwhile).
    pub(super) async fn retrying<T, F, Fut>(&self, mut write: F) -> Result<T, RecordsError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, RecordsError>>,
    {
        let deadline = tokio::time::Instant::now() + self.settings.final_notify_patience;
        let backoff = Backoff {
            first: Duration::from_millis(500),
            max: Duration::from_secs(15),
            jitter: true,
        };
        let mut retry = 0;
        loop {
            match write().await {
                Ok(written) => return Ok(written),
                Err(e) if e.is_transient() => {
                    let pause = backoff.wait(retry);
                    if tokio::time::Instant::now() + pause >= deadline {
                        return Err(e);
                    }
                    tracing::warn!(error = %e, "job records unavailable; retrying");
                    tokio::time::sleep(pause).await;
                    retry += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// What [`Worker::record_running`] found.
pub(super) enum Start {
    /// Marked running: start the job.
    Go,
    /// Someone asked to stop the job before it started: do not start it.
    StoppedBy(String),
    /// Another runner holds the job now: let it go.
    TakenOver,
}

/// `runner` holds the job (a record without a holder is held by nobody).
fn holds(record: &JobRecord, runner: &str) -> bool {
    record.holder.as_ref().is_some_and(|h| h.runner == runner)
}

fn apply_outcome(record: &mut JobRecord, outcome: &Outcome, state: JobState, runner: &str) {
    if record.started_at.is_none() {
        record.started_at = outcome.started_at;
    }
    record.error = outcome.error.clone();
    record.set_output_tail(&outcome.output);
    record.ended_at = Some(outcome.ended_at);
    record.set_state(state, runner, outcome.ended_at, None);
}

/// The outcome a record tells, for a final status that was never posted.
pub(super) fn outcome_of(record: &JobRecord) -> Outcome {
    let state = match record.state {
        JobState::Completed => FinalState::Completed,
        JobState::Stopped => FinalState::Stopped,
        JobState::Suspended => FinalState::Suspended,
        JobState::TimedOut => FinalState::TimedOut,
        JobState::Refused => FinalState::Refused,
        JobState::Expired => FinalState::Expired,
        JobState::Interrupted => FinalState::Interrupted,
        JobState::Failed | JobState::Pending | JobState::Running => FinalState::Failed,
    };
    Outcome {
        state,
        output: record.output_tail.clone(),
        error: record.error.clone(),
        started_at: record.started_at,
        ended_at: record.ended_at.unwrap_or_else(OffsetDateTime::now_utc),
        stopped_by: record.stop.as_ref().map(|s| s.by.clone()),
    }
}
