//! A local script starts at most once: the rules the worker applies around a local job.
//!
//! - The job id is claimed in this runner before anything else: a second message for a job
//!   this runner already ran is a [`Ran::Duplicate`] (one still running here never gets this
//!   far: the poller hands it to the running job, see `held`).
//! - Just before the script starts, the message on the queue is marked `started_at`. A
//!   delivery that carries a mark means a runner started the job and did not finish it: the
//!   executor reports it as interrupted, whatever its age.
//! - Unless the mark is this runner's own, written by an update whose answer was lost (or
//!   failed) and never followed by a start: this runner knows the script did not start, so it
//!   marks again and runs it (or lets it expire, like any job not started).

use super::extender::Extender;
use crate::executor::{Outcome, TransientError};
use chatops_shared::job::JobMessage;
use chatops_shared::recent_ids::RecentIds;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

/// How long this runner remembers the local jobs it ran, to drop duplicate messages.
const CLAIM_MEMORY: Duration = Duration::from_secs(24 * 3600);
/// A bound on that memory.
const MAX_CLAIMS: usize = 100_000;
/// A bound on the start marks remembered as never followed by a start (each is a failed
/// queue update: rare).
const MAX_UNFOLLOWED_MARKS: usize = 10_000;

/// How a local job's delivery went.
#[derive(Debug)]
pub(super) enum Ran {
    /// The job has a final outcome: it ran, was found interrupted, or was too old to start.
    Finished(Outcome),
    /// A second message for a job this runner already ran: the first one reported it.
    Duplicate,
    /// Not started, or not seen to its end, for a reason that may pass: the message is left
    /// for a retry.
    Retry(TransientError),
}

/// What this runner remembers about the local jobs it started or tried to start.
pub(super) struct LocalStarts {
    /// Local jobs this runner started, by job id.
    claimed: RecentIds,
    /// Start marks this runner tried to write and then did not start the script: job id →
    /// the mark's time.
    unfollowed_marks: Mutex<HashMap<Uuid, OffsetDateTime>>,
}

impl Default for LocalStarts {
    fn default() -> Self {
        LocalStarts {
            claimed: RecentIds::new(CLAIM_MEMORY, MAX_CLAIMS),
            unfollowed_marks: Mutex::default(),
        }
    }
}

impl LocalStarts {
    /// Applies the rules to one delivery of a local job. `expired` is the outcome to report
    /// when the job has not started and is too old to start; `execute(redelivered)` runs the
    /// executor (which reports the job interrupted, without running it, when `redelivered`).
    pub(super) async fn run<Fut>(
        &self,
        job: &JobMessage,
        extender: &Extender,
        expired: Option<Outcome>,
        execute: impl FnOnce(bool) -> Fut,
    ) -> Ran
    where
        Fut: Future<Output = Result<Outcome, TransientError>>,
    {
        if !self.claimed.claim(job.job_id) {
            return Ran::Duplicate;
        }
        let started_elsewhere = job
            .started_at
            .is_some_and(|at| !self.is_unfollowed_mark(&job.job_id, at));
        if !started_elsewhere {
            if let Some(outcome) = expired {
                self.forget_mark(&job.job_id);
                return Ran::Finished(outcome);
            }
            let at = OffsetDateTime::now_utc();
            if let Err(e) = extender.mark_started(at).await {
                // The mark may have been written all the same: remember it as ours, so that
                // this runner does not report the job interrupted when the message comes back.
                self.remember_mark(job.job_id, at);
                self.claimed.release(&job.job_id);
                return Ran::Retry(TransientError(format!(
                    "could not mark the job as started on the queue, so it was not started: {e}"
                )));
            }
            self.forget_mark(&job.job_id);
        }
        match execute(started_elsewhere).await {
            Ok(outcome) => Ran::Finished(outcome),
            Err(e) => {
                // The next delivery (marked) reports the job as interrupted, here or elsewhere.
                self.claimed.release(&job.job_id);
                Ran::Retry(e)
            }
        }
    }

    /// This runner ran the job (or is running it, or reported it expired). Only a caller that
    /// holds the job (see `held`) may ask, so that nobody claims it in between.
    pub(super) fn ran_here(&self, job_id: &Uuid) -> bool {
        if self.claimed.claim(*job_id) {
            self.claimed.release(job_id);
            return false;
        }
        true
    }

    fn is_unfollowed_mark(&self, job_id: &Uuid, at: OffsetDateTime) -> bool {
        self.marks().get(job_id) == Some(&at)
    }

    fn remember_mark(&self, job_id: Uuid, at: OffsetDateTime) {
        let mut marks = self.marks();
        if marks.len() >= MAX_UNFOLLOWED_MARKS {
            let now = OffsetDateTime::now_utc();
            marks.retain(|_, at| now - *at < CLAIM_MEMORY);
        }
        // Past the bound such a job is reported interrupted when it comes back, as on any
        // other runner.
        if marks.len() < MAX_UNFOLLOWED_MARKS {
            marks.insert(job_id, at);
        }
    }

    fn forget_mark(&self, job_id: &Uuid) {
        self.marks().remove(job_id);
    }

    fn marks(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, OffsetDateTime>> {
        // A panic while holding this lock leaves a valid map: keep using it.
        self.unfollowed_marks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::format_description::well_known::Rfc3339;

    /// The mark is compared with the time read back from the message (written and read as
    /// RFC 3339): that must give back exactly the time written, nanoseconds included.
    #[test]
    fn a_start_mark_is_recognised_by_its_exact_time() {
        let at = OffsetDateTime::now_utc() + time::Duration::nanoseconds(123_456_789);
        let text = at.format(&Rfc3339).unwrap_or_default();
        assert_eq!(OffsetDateTime::parse(&text, &Rfc3339).ok(), Some(at));

        let starts = LocalStarts::default();
        let job = Uuid::from_u128(1);
        starts.remember_mark(job, at);
        assert!(starts.is_unfollowed_mark(&job, at));
        assert!(!starts.is_unfollowed_mark(&job, at + Duration::from_nanos(1)));
        assert!(!starts.is_unfollowed_mark(&Uuid::from_u128(2), at));
        starts.forget_mark(&job);
        assert!(!starts.is_unfollowed_mark(&job, at));
    }
}
