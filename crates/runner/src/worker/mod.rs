//! The worker: takes a job message, runs it, reports it, and only then deletes the message.
//!
//! [`Worker::process_next`] is one step (receive one message and see it through), callable from
//! tests; [`Worker::run_until_stopped`] (`poll`) is the loop the binary runs, with up to
//! `concurrency` jobs in flight and polling that backs off to one request a second when the
//! queue is idle.
//!
//! How one message is seen through ([`Worker::handle_job`]):
//! 1. A message for a job this runner holds already (running, or reporting) is handed to that
//!    job (`held`), which takes it over: it is not a new job, and its deliveries are not counted.
//! 2. A message this runner cannot read goes to `<queue>-poison` at once, with the reason; a
//!    duplicate of a local job this runner already ran is deleted; a message delivered more
//!    than `max_dequeue` times goes to the poison queue and the requester is told.
//! 3. From then on the message is held (`extender`): its invisibility is extended while the job
//!    runs and its final status is delivered, so no other runner takes it.
//! 4. The catalog and the caller are checked again (`prepare`): `Refused` when they no longer
//!    allow the job.
//! 5. The job runs. A job not yet started whose request is older than `max_job_age` is not
//!    started (`Expired`); a job that has started is followed whatever its age. Automation jobs
//!    are named by `job_id`, so a redelivered message follows the job already started; a local
//!    script starts at most once (`once`): a redelivered one that had started is reported as
//!    interrupted, not run again.
//! 6. The final status is posted (`report`), and only then is the message deleted; when Slack
//!    refuses it for good, the message goes to the poison queue with the outcome.
//!
//! Delivery is at-least-once, so every step is safe to repeat. A failure that may pass leaves
//! the message to come back when its invisibility ends.

use crate::executor::{Executor, FinalState, JobRequest, Outcome};
use crate::notify::{Notifier, Update};
use chatops_shared::catalog::Catalog;
use chatops_shared::job::{DecodeError, JobKeys, JobMessage};
use chatops_shared::queue::{JobQueue, PoisonRecord, QueueError, Received};
use extender::{Extender, Held};
use held::{HeldJobs, Hold};
use once::{LocalStarts, Ran};
use prepare::Prepared;
use std::sync::Arc;
use tracing::Instrument;

mod extender;
mod held;
mod once;
mod poll;
mod prepare;
mod report;
mod settings;

pub use extender::MIN_VISIBILITY;
pub use settings::WorkerSettings;

/// What one call of [`Worker::process_next`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A message was taken and seen through (finished, poisoned, left for a retry, or handed to
    /// the job holding it).
    Processed,
    /// The queue had nothing for us.
    Empty,
}

/// The executors this runner has. Automation is absent when its variables are not set.
#[derive(Clone)]
pub struct Executors {
    pub automation: Option<Arc<dyn Executor>>,
    pub local: Arc<dyn Executor>,
}

/// A competing consumer of the job queue.
#[derive(Clone)]
pub struct Worker {
    queue: Arc<dyn JobQueue>,
    catalog: Arc<Catalog>,
    /// A message runs only when its `mac` verifies under one of these.
    job_keys: Arc<JobKeys>,
    executors: Executors,
    notifier: Arc<dyn Notifier>,
    settings: WorkerSettings,
    /// Jobs this runner is seeing through now; further deliveries of them go to them.
    held: HeldJobs,
    /// What the local start rules remember.
    local_starts: Arc<LocalStarts>,
}

/// A received message that is not for a job held here already.
enum Delivery {
    /// A job message; this runner holds the job from now on.
    Job {
        message: Received,
        job: Box<JobMessage>,
        hold: Hold,
    },
    /// A message this runner cannot read as a job.
    Unreadable {
        message: Received,
        reason: DecodeError,
    },
}

impl Delivery {
    /// The message, the job (if any) no longer held.
    fn into_message(self) -> Received {
        match self {
            Delivery::Job { message, .. } | Delivery::Unreadable { message, .. } => message,
        }
    }
}

impl Worker {
    pub fn new(
        queue: Arc<dyn JobQueue>,
        catalog: Arc<Catalog>,
        job_keys: JobKeys,
        executors: Executors,
        notifier: Arc<dyn Notifier>,
        settings: WorkerSettings,
    ) -> Self {
        Worker {
            queue,
            catalog,
            job_keys: Arc::new(job_keys),
            executors,
            notifier,
            settings,
            held: HeldJobs::default(),
            local_starts: Arc::default(),
        }
    }

    /// Takes one message, if there is one, and sees it through.
    pub async fn process_next(&self) -> Result<Step, QueueError> {
        let mut messages = self.queue.receive(1, self.settings.visibility).await?;
        let Some(message) = messages.pop() else {
            return Ok(Step::Empty);
        };
        if let Some(delivery) = self.route(message) {
            self.see_through(delivery).await;
        }
        Ok(Step::Processed)
    }

    /// Hands a delivery of a job held here to that job (`None`); anything else comes back to
    /// be seen through. The `mac` is checked first, so a forged message can neither start a job
    /// nor take the place of a held one's delivery.
    fn route(&self, message: Received) -> Option<Delivery> {
        let job = match JobMessage::decode(&message.text, &self.job_keys) {
            Ok(job) => job,
            Err(reason) => return Some(Delivery::Unreadable { message, reason }),
        };
        let job_id = job.job_id;
        match self.held.hold(job_id, message) {
            Some((hold, message)) => Some(Delivery::Job {
                message,
                job: Box::new(job),
                hold,
            }),
            None => {
                tracing::info!(%job_id, "another delivery of a job held here: handed to it");
                None
            }
        }
    }

    /// Sees one delivery through. Never returns an error: every failure ends in a retry (the
    /// message is left to come back) or in the poison queue. A message that cannot be read, or
    /// whose `mac` does not verify, goes to the poison queue at once and nothing is posted: its
    /// `response_url` is not to be trusted.
    async fn see_through(&self, delivery: Delivery) {
        match delivery {
            Delivery::Unreadable { message, reason } => {
                self.handle_unreadable(message, reason).await;
            }
            Delivery::Job { message, job, hold } => {
                let span = tracing::info_span!("job", job_id = %job.job_id, runbook = %job.runbook, dequeue = message.dequeue_count);
                self.handle_job(message, *job, hold).instrument(span).await;
            }
        }
    }

    async fn handle_unreadable(&self, message: Received, reason: DecodeError) {
        tracing::warn!(message_id = %message.message_id, %reason, "unreadable message");
        if !self
            .poison(&message, format!("unreadable job message: {reason}"))
            .await
            && message.dequeue_count > self.settings.max_dequeue
        {
            // Neither readable nor movable: keeping it would bring it back forever.
            tracing::error!(message_id = %message.message_id, "deleting an unreadable message that could not be moved to the poison queue");
            self.delete(&message).await;
        }
    }

    async fn handle_job(&self, message: Received, job: JobMessage, hold: Hold) {
        if self.local_starts.ran_here(&job.job_id) {
            // A second message for a job this runner already ran (a retried or replayed
            // enqueue, or a delete that failed): the first one reported it.
            tracing::warn!("duplicate message for a local job already run here; deleting it");
            self.delete(&message).await;
            return;
        }
        if message.dequeue_count > self.settings.max_dequeue {
            self.give_up(&message, &job).await;
            return;
        }

        let dequeue_count = message.dequeue_count;
        // Runs until the message is deleted or handed back, so no other runner takes it
        // while its job runs or its final status is being delivered.
        let extender = Extender::start(self.queue.clone(), message, hold, self.settings.visibility);
        let ran = match self.prepare(&job, dequeue_count) {
            Err(outcome) => Ran::Finished(outcome),
            Ok(prepared) => self.run(&job, &prepared, &extender).await,
        };
        let outcome = match ran {
            Ran::Finished(outcome) => outcome,
            Ran::Duplicate => {
                tracing::warn!("duplicate message for a local job already run here; deleting it");
                let held = extender.stop().await;
                self.delete_all(&held).await;
                return;
            }
            Ran::Retry(e) => {
                tracing::warn!(error = %e, "job hit a transient error; leaving the message for a retry");
                // The message comes back when the visibility of its last extension ends.
                extender.stop().await;
                return;
            }
        };
        tracing::info!(state = outcome.state.label(), "job finished");
        let notified = self.notify_final(&job, &outcome).await;
        let held = extender.stop().await;
        match notified {
            Ok(()) => self.delete_all(&held).await,
            Err(e) => {
                let reason = format!(
                    "job ended {} but the final Slack notification failed: {e}",
                    outcome.state.label()
                );
                // The status the channel did not get, for the operator who reads this log.
                let status = crate::notify::render::text(&job, &Update::Finished(outcome.clone()));
                tracing::error!(%reason, %status, "moving message to the poison queue");
                self.poison(&held.message, reason).await;
                for copy in &held.copies {
                    self.delete(copy).await;
                }
            }
        }
    }

    /// Runs a prepared job to its end, by the start rules of its kind.
    async fn run(&self, job: &JobMessage, prepared: &Prepared, extender: &Extender) -> Ran {
        let expired = self.expired(job);
        let executor = &prepared.executor;
        if prepared.local {
            let execute = |redelivered| async move {
                let request = JobRequest {
                    redelivered,
                    ..prepared.request.clone()
                };
                self.reporting(job, |progress| executor.run(&request, progress))
                    .await
            };
            return self.local_starts.run(job, extender, expired, execute).await;
        }
        let request = &prepared.request;
        let result = match expired {
            None => {
                self.reporting(job, |progress| executor.run(request, progress))
                    .await
            }
            // Too old to start, but followed to its end if it started.
            Some(expired) => self
                .reporting(job, |progress| executor.follow_started(request, progress))
                .await
                .map(|started| started.unwrap_or(expired)),
        };
        match result {
            Ok(outcome) => Ran::Finished(outcome),
            Err(e) => Ran::Retry(e),
        }
    }

    /// Gives up on a message delivered too often: it goes to the poison queue, and the
    /// requester is told.
    async fn give_up(&self, message: &Received, job: &JobMessage) {
        let reason = format!(
            "delivered {} times without finishing (limit {})",
            message.dequeue_count, self.settings.max_dequeue
        );
        tracing::error!(%reason, "giving up on job");
        // Off the job queue first, so that a slow notification cannot let another runner
        // take the message and give up on it a second time.
        self.poison(message, reason.clone()).await;
        let outcome = Outcome::without_run(
            FinalState::Failed,
            format!(
                "The runner gave up: the job was {reason}. An operator can find it on the poison queue."
            ),
        );
        // Best effort: the poison queue keeps it either way.
        if let Err(e) = self.notifier.notify(job, &Update::Finished(outcome)).await {
            tracing::warn!(error = %e, "could not tell the requester about the given-up job");
        }
    }

    /// Deletes the job's message and the other messages for the job held with it.
    async fn delete_all(&self, held: &Held) {
        if held.lost {
            tracing::warn!(
                "this runner lost hold of the job's message and it did not come back before the job ended: it reappears when the invisibility of its last update ends (on this runner a local job is then dropped as already run)"
            );
        } else {
            self.delete(&held.message).await;
        }
        for copy in &held.copies {
            self.delete(copy).await;
        }
    }

    async fn delete(&self, message: &Received) {
        if let Err(e) = self.queue.delete(message).await {
            // The message will come back; its job is followed again, not run twice.
            tracing::warn!(error = %e, "could not delete the finished job's message");
        }
    }

    /// Moves a message to the poison queue; false when that failed (the message stays).
    async fn poison(&self, message: &Received, reason: String) -> bool {
        let record = PoisonRecord::new(message, reason);
        match self.queue.send_poison(&record.encode()).await {
            Ok(()) => {
                self.delete(message).await;
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "could not move the message to the poison queue; it will come back");
                false
            }
        }
    }
}
