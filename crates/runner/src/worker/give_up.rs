//! A message delivered more than `max_dequeue` times is given up on: it goes to the poison
//! queue, and the requester is told (tried as any final status is), unless the job's record
//! says its end was posted already. A job a runner that still looks alive holds is not given up
//! on yet: its message comes back later.

use super::prepare::Reached;
use super::{Worker, finish};
use crate::executor::{FinalState, Outcome};
use chatops_shared::audit::AuditEvent;
use chatops_shared::job::{JobKind, JobMessage};
use chatops_shared::queue::Received;
use chatops_shared::records::{Claim, ExecutorRef, Holder, JobRecord, JobState, record_name_of};
use time::OffsetDateTime;

/// How many times `max_dequeue` a job seen running, or held back by Azure, may be delivered
/// before it is given up on.
pub(super) const STARTED_DELIVERIES: u32 = 4;

/// What becomes of a message delivered more than `max_dequeue` times.
pub(super) enum OverLimit {
    /// The job was seen running, or Azure holds it back: it is handled as any delivery.
    Follow,
    GiveUp,
    /// Its record could not be read: the message comes back later.
    Retry,
}

impl Worker {
    /// Gives up on a message delivered too often: it goes to the poison queue, and the
    /// requester is told, unless the job's record says another runner is on it or the end
    /// was posted (a job that ended unreported gets its real end posted instead).
    pub(super) async fn give_up(&self, message: &Received, job: &JobMessage) {
        let reason = format!(
            "delivered {} times without finishing (limit {})",
            message.dequeue_count, self.settings.max_dequeue
        );
        tracing::error!(%reason, "giving up on job");
        // Off the job queue first, so that a slow notification cannot let another runner
        // take the message and give up on it a second time.
        if !self.poison(message, reason.clone()).await {
            // Nothing is told or recorded that says the poison queue has it: the message comes
            // back, and the next delivery gives up on it.
            return;
        }
        let gave_up = Outcome::without_run(
            FinalState::Failed,
            format!(
                "The runner gave up: the job was {reason}. An operator can find it on the poison queue."
            ),
        );
        let outcome = match job.kind {
            JobKind::Run => match self.give_up_record(job, &gave_up).await {
                Some(outcome) => outcome,
                None => return,
            },
            JobKind::Stop => gave_up.clone(),
        };
        // Tried as any final status (its message is gone: this is the one chance); the
        // poison queue keeps the job either way.
        if let Err(e) = Box::pin(self.notify_final(job, &outcome)).await {
            tracing::warn!(error = %e, "could not tell the requester about the given-up job");
        } else if job.kind == JobKind::Run {
            self.record_reported_given_up(job, &gave_up).await;
        }
    }

    /// What to do with a message delivered more than `max_dequeue` times. A job whose record
    /// says it was seen running, or whose Automation job Azure has (held back, not started),
    /// and that has not ended is taken over and followed (or reported `Interrupted`): giving up
    /// would call a job `Failed` that runs or will run, and its deliveries come from its
    /// runners stopping (crashes, restarts). Up to
    /// [`STARTED_DELIVERIES`] times the limit: past that, following it is taken to be what
    /// brings its runners down, and it is given up on. When the record cannot be read, the
    /// message is left to come back (as any delivery is while the records are unreachable).
    pub(super) async fn over_limit(&self, job: &JobMessage, deliveries: u32) -> OverLimit {
        if job.kind != JobKind::Run
            || deliveries > self.settings.max_dequeue.saturating_mul(STARTED_DELIVERIES)
        {
            return OverLimit::GiveUp;
        }
        let me = self.settings.runner_id.as_str();
        let now = OffsetDateTime::now_utc();
        match self.records.read(&record_name_of(job)).await {
            // Held by a runner that still looks alive (it may have left the message to retry a
            // start that failed for now, and its heartbeat has not lapsed yet): giving up now
            // would poison the message while the record stays that runner's, and the requester
            // would never be told. The message comes back, by when the holder is either on it
            // or dead.
            Ok(Some(found))
                if !found.record.state.is_final()
                    && held_alive_elsewhere(&found.record, me, now, self.settings.dead_after()) =>
            {
                OverLimit::Retry
            }
            Ok(Some(found)) if !found.record.state.is_final() => {
                match Reached::of(&found.record) {
                    Reached::Running => OverLimit::Follow,
                    // Created, held back until the account has a free slot, it will run; when
                    // Azure cannot say, the message comes back (up to four times the limit).
                    Reached::AzureMayHaveIt => match self.azure_has(job).await {
                        Some(true) => OverLimit::Follow,
                        Some(false) => OverLimit::GiveUp,
                        None => OverLimit::Retry,
                    },
                    // A script marked for its start: reported `Interrupted` (it may have run).
                    Reached::Nothing
                        if found.record.state == JobState::Running
                            && matches!(found.record.executor, Some(ExecutorRef::Local { .. })) =>
                    {
                        OverLimit::Follow
                    }
                    Reached::Nothing => OverLimit::GiveUp,
                }
            }
            Ok(_) => OverLimit::GiveUp,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the job's record to decide whether to give up on it; leaving the message for a retry");
                OverLimit::Retry
            }
        }
    }

    /// What to post about a job given up on, from its record: nothing while another runner
    /// holds it or once its end was posted; its recorded end when it ended unreported; else
    /// `gave_up`, written into the record. Without a readable record, `gave_up`.
    async fn give_up_record(&self, job: &JobMessage, gave_up: &Outcome) -> Option<Outcome> {
        let now = OffsetDateTime::now_utc();
        let me = self.settings.runner_id.clone();
        let dead_after = self.settings.dead_after();
        // No record yet (no runner got that far): one is made, so that another message for the
        // job finds it given up on rather than running it after the requester was told.
        if let Ok(Claim::Created(created)) = self.records.claim(job, &me, now, dead_after).await {
            let mut record = created.record.clone();
            end_given_up(&mut record, gave_up, &me, now);
            match self.records.replace(&created, record).await {
                Ok(_) => self.audit_given_up(job),
                Err(e) => tracing::warn!(error = %e, "could not end the given-up job's new record"),
            }
            return Some(gave_up.clone());
        }
        let mut post = Some(gave_up.clone());
        let mut ended_here = false;
        let result = self
            .records
            .update(&record_name_of(job), |record| {
                // Set again on every try of the conditional write.
                ended_here = false;
                post = if held_alive_elsewhere(record, &me, now, dead_after) || record.reported {
                    None
                } else if record.state.is_final() {
                    Some(finish::outcome_of(record))
                } else {
                    Some(gave_up.clone())
                };
                if post.is_none() || record.state.is_final() {
                    return false;
                }
                end_given_up(record, gave_up, &me, now);
                record.holder = Some(Holder::new(&me, now, dead_after));
                ended_here = true;
                true
            })
            .await;
        match result {
            Ok(Some(_)) if ended_here => self.audit_given_up(job),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not read or end the given-up job's record");
                return Some(gave_up.clone());
            }
        }
        post
    }

    /// The audit log's line for a job this runner ended `Failed` by giving up on it.
    fn audit_given_up(&self, job: &JobMessage) {
        self.audit(AuditEvent::Ended {
            job_id: job.job_id,
            state: JobState::Failed.as_str().to_owned(),
            runner: self.settings.runner_id.clone(),
        });
    }

    /// Marks a given-up job reported, whoever held it (its holder is dead or gone), ended
    /// `Failed` as the requester was told if its record has no final state yet (writing it had
    /// failed): a reported record always has one.
    async fn record_reported_given_up(&self, job: &JobMessage, gave_up: &Outcome) {
        let now = OffsetDateTime::now_utc();
        let me = self.settings.runner_id.clone();
        let dead_after = self.settings.dead_after();
        let mut ended_here = false;
        let result = self
            .records
            .update(&record_name_of(job), |record| {
                ended_here = false;
                // A live runner took the job on meanwhile: the record is its to end.
                let held = held_alive_elsewhere(record, &me, now, dead_after);
                if record.reported || (held && !record.state.is_final()) {
                    return false;
                }
                ended_here = !record.state.is_final();
                if ended_here {
                    end_given_up(record, gave_up, &me, now);
                }
                record.reported = true;
                record.holder = None;
                true
            })
            .await;
        match result {
            Ok(Some(_)) if ended_here => self.audit_given_up(job),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not mark the given-up job reported"),
        }
    }
}

/// Another runner holds the job, and its heartbeat is fresh.
fn held_alive_elsewhere(
    record: &JobRecord,
    me: &str,
    now: OffsetDateTime,
    dead_after: std::time::Duration,
) -> bool {
    record.holder.as_ref().is_some_and(|h| h.runner != me)
        && !record.holder_is_dead(now, dead_after)
}

/// Ends the record `Failed` with the give-up's reason, as the requester is told.
fn end_given_up(record: &mut JobRecord, gave_up: &Outcome, me: &str, now: OffsetDateTime) {
    record.error = gave_up.error.clone();
    record.set_state(JobState::Failed, me, now, None);
}
