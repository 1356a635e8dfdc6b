//! The worker: takes a job message, runs it, reports it, and only then deletes the message.
//!
//! [`Worker::process_next`] is one step (receive one message and see it through), callable from
//! tests; [`Worker::run_until_stopped`] is the loop the binary runs, with up to `concurrency`
//! jobs in flight and polling that backs off to one request a second when the queue is idle.
//!
//! Delivery is at-least-once, so every step is safe to repeat:
//! - a message this runner cannot read goes to `<queue>-poison` at once, with the reason;
//! - a message delivered more than `max_dequeue` times goes there too, and the requester is told;
//! - Azure Automation jobs are named by `job_id`, so a redelivered message follows the job it
//!   already started; a redelivered local job is reported as interrupted, not run again;
//! - while a job runs, its message's invisibility is extended, so no other runner takes it;
//! - the message is deleted only after the final status reached Slack (or, when Slack refuses
//!   it for good, after the message went to the poison queue with the outcome).

use crate::executor::{Executor, FinalState, JobRequest, Outcome, Progress, TransientError};
use crate::notify::{Notifier, NotifyError, Update};
use chatops_shared::catalog::{Caller, Catalog, ExecutorKind};
use chatops_shared::claims::Claims;
use chatops_shared::command::Arg;
use chatops_shared::job::{JobKeys, JobMessage};
use chatops_shared::queue::{JobQueue, PoisonRecord, QueueError, Received};
use extender::Extender;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

mod extender;

pub use extender::MIN_VISIBILITY;
mod poll;

/// What one call of [`Worker::process_next`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A message was taken and seen through (finished, poisoned, or left for a retry).
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

/// Tunables, all from configuration.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// How long a taken message stays invisible; extended every third of it while a job runs.
    pub visibility: Duration,
    /// Deliveries after which a message is given up on (Azure Functions uses 5).
    pub max_dequeue: u32,
    /// Jobs followed at once by this runner.
    pub concurrency: usize,
    /// Longest wait between polls of an idle queue.
    pub max_idle_poll: Duration,
    /// How long the final notification may keep failing before the message goes to the poison
    /// queue with its outcome.
    pub final_notify_patience: Duration,
    /// How long in-flight jobs may run on after a shutdown signal before they are dropped (their
    /// messages then come back on the queue for another runner).
    pub shutdown_grace: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            visibility: Duration::from_secs(60),
            max_dequeue: 5,
            concurrency: 8,
            max_idle_poll: Duration::from_secs(1),
            final_notify_patience: Duration::from_secs(600),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// How long this runner remembers the local jobs it ran, to drop duplicate messages.
const CLAIM_MEMORY: Duration = Duration::from_secs(24 * 3600);
/// A bound on that memory.
const MAX_CLAIMS: usize = 100_000;

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
    /// Local jobs this runner started, by job id.
    claimed: Arc<Claims>,
    /// Local jobs running on this runner now.
    running: Arc<std::sync::Mutex<std::collections::HashSet<uuid::Uuid>>>,
}

/// Marks a local job as running on this runner for as long as it lives.
struct Running {
    set: Arc<std::sync::Mutex<std::collections::HashSet<uuid::Uuid>>>,
    job_id: uuid::Uuid,
}

impl Running {
    fn new(
        set: &Arc<std::sync::Mutex<std::collections::HashSet<uuid::Uuid>>>,
        job_id: uuid::Uuid,
    ) -> Self {
        set.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(job_id);
        Running {
            set: set.clone(),
            job_id,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.job_id);
    }
}

/// A job checked against the catalog, ready to run.
struct Prepared {
    request: JobRequest,
    executor: Arc<dyn Executor>,
    local: bool,
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
            claimed: Arc::new(Claims::new(CLAIM_MEMORY, MAX_CLAIMS)),
            running: Arc::default(),
        }
    }

    /// Takes one message, if there is one, and sees it through.
    pub async fn process_next(&self) -> Result<Step, QueueError> {
        let mut messages = self.queue.receive(1, self.settings.visibility).await?;
        match messages.pop() {
            None => Ok(Step::Empty),
            Some(message) => {
                self.handle(message).await;
                Ok(Step::Processed)
            }
        }
    }

    /// Sees one message through. Never returns an error: every failure ends in a retry (the
    /// message is left to come back) or in the poison queue. A message that cannot be read, or
    /// whose `mac` does not verify, goes to the poison queue at once and nothing is posted: its
    /// `response_url` is not to be trusted.
    async fn handle(&self, message: Received) {
        let job = match JobMessage::decode(&message.text, &self.job_keys) {
            Ok(job) => job,
            Err(e) => {
                tracing::warn!(message_id = %message.message_id, reason = %e, "unreadable message");
                if !self
                    .poison(&message, format!("unreadable job message: {e}"))
                    .await
                    && message.dequeue_count > self.settings.max_dequeue
                {
                    // Neither readable nor movable: keeping it would bring it back forever.
                    tracing::error!(message_id = %message.message_id, "deleting an unreadable message that could not be moved to the poison queue");
                    self.delete(&message).await;
                }
                return;
            }
        };
        let span = tracing::info_span!("job", job_id = %job.job_id, runbook = %job.runbook, dequeue = message.dequeue_count);
        self.handle_job(message, job).instrument(span).await;
    }

    async fn handle_job(&self, message: Received, job: JobMessage) {
        if message.dequeue_count > self.settings.max_dequeue {
            let reason = format!(
                "delivered {} times without finishing (limit {})",
                message.dequeue_count, self.settings.max_dequeue
            );
            tracing::error!(%reason, "giving up on job");
            // Off the job queue first, so that a slow notification cannot let another runner
            // take the message and give up on it a second time.
            self.poison(&message, reason.clone()).await;
            let outcome = Outcome::without_run(
                FinalState::Failed,
                format!(
                    "The runner gave up: the job was {reason}. An operator can find it on the poison queue."
                ),
            );
            // Best effort: the poison queue keeps it either way.
            if let Err(e) = self.notifier.notify(&job, &Update::Finished(outcome)).await {
                tracing::warn!(error = %e, "could not tell the requester about the given-up job");
            }
            return;
        }

        let dequeue_count = message.dequeue_count;
        // Runs until the message is deleted or handed back, so no other runner takes it
        // while its job runs or its final status is being delivered.
        let extender = Extender::start(self.queue.clone(), message, self.settings.visibility);
        let result = match self.prepare(&job, dequeue_count) {
            Err(outcome) => Ok(Some(outcome)),
            Ok(prepared) if prepared.local => self.run_local(&job, &prepared, &extender).await,
            Ok(prepared) => self.execute(&job, &prepared).await.map(Some),
        };
        let outcome = match result {
            Ok(Some(outcome)) => outcome,
            Ok(None) => {
                // A second message for a job this runner already ran (a retried or replayed
                // enqueue, or a delete that failed): the first one reported it.
                tracing::warn!("duplicate message for a local job already run here; deleting it");
                let message = extender.stop().await;
                self.delete(&message).await;
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "job hit a transient error; leaving the message for a retry");
                // The message comes back when the visibility of its last extension ends.
                extender.stop().await;
                return;
            }
        };
        tracing::info!(state = outcome.state.label(), "job finished");
        let notified = self.notify_final(&job, &outcome).await;
        let message = extender.stop().await;
        match notified {
            Ok(()) => self.delete(&message).await,
            Err(e) => {
                let reason = format!(
                    "job ended {} but the final Slack notification failed: {e}",
                    outcome.state.label()
                );
                // The status the channel did not get, for the operator who reads this log.
                let status = crate::notify::render::text(&job, &Update::Finished(outcome.clone()));
                tracing::error!(%reason, %status, "moving message to the poison queue");
                self.poison(&message, reason).await;
            }
        }
    }

    /// A local script starts at most once: the job id is claimed in this runner, and the
    /// message on the queue is marked `started_at` before the script starts. A marked message
    /// that comes back means a runner started the job and did not finish: the executor reports
    /// it as interrupted. `None`: a duplicate of a job this runner already ran.
    async fn run_local(
        &self,
        job: &JobMessage,
        prepared: &Prepared,
        extender: &Extender,
    ) -> Result<Option<Outcome>, TransientError> {
        if !self.claimed.claim(job.job_id) {
            if self.running_here(&job.job_id) {
                // Another copy (or this message, back after its invisibility lapsed) of a job
                // still running here: leave it; once the job has reported, it is dropped.
                return Err(TransientError(
                    "this job is still running on this runner; leaving this copy for later".into(),
                ));
            }
            return Ok(None);
        }
        if job.started_at.is_none()
            && let Err(e) = extender.mark_started(time::OffsetDateTime::now_utc()).await
        {
            self.claimed.release(&job.job_id);
            return Err(TransientError(format!(
                "could not mark the job as started on the queue, so it was not started: {e}"
            )));
        }
        let result = {
            let _running = Running::new(&self.running, job.job_id);
            self.execute(job, prepared).await
        };
        if result.is_err() {
            // The next delivery (marked) reports the job as interrupted, here or elsewhere.
            self.claimed.release(&job.job_id);
        }
        result.map(Some)
    }

    fn running_here(&self, job_id: &uuid::Uuid) -> bool {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(job_id)
    }

    /// Runs a prepared job and reports its progress.
    async fn execute(
        &self,
        job: &JobMessage,
        prepared: &Prepared,
    ) -> Result<Outcome, crate::executor::TransientError> {
        let (progress_tx, mut progress_rx) = tokio::sync::mpsc::unbounded_channel();
        let run = prepared.executor.run(&prepared.request, progress_tx);
        let report = async {
            while let Some(Progress::Running { started_at }) = progress_rx.recv().await {
                if let Err(e) = self
                    .notifier
                    .notify(job, &Update::Running { started_at })
                    .await
                {
                    tracing::warn!(error = %e, "could not post the running status");
                }
            }
        };
        let (result, ()) = tokio::join!(run, report);
        result
    }

    /// The runner's own check: the catalog may have changed since the ingress accepted the
    /// command, and the queue may hold messages the ingress never wrote.
    fn prepare(&self, job: &JobMessage, dequeue_count: u32) -> Result<Prepared, Outcome> {
        let refused = |why: String| Outcome::without_run(FinalState::Refused, why);
        let runbook = self.catalog.get(&job.runbook).ok_or_else(|| {
            refused(format!(
                "`{}` is not in this runner's catalog.",
                job.runbook
            ))
        })?;
        let caller = Caller {
            user_id: &job.user_id,
            channel_id: &job.channel_id,
        };
        runbook
            .authorize(&caller)
            .map_err(|r| refused(r.to_string()))?;
        let args: Vec<Arg> = job
            .params
            .iter()
            .map(|(name, value)| Arg::Named {
                name: name.clone(),
                value: value.clone(),
            })
            .collect();
        let given = runbook.bind(&args).map_err(|r| refused(r.to_string()))?;
        let executor = match runbook.executor {
            ExecutorKind::Local => self.executors.local.clone(),
            ExecutorKind::Automation => self.executors.automation.clone().ok_or_else(|| {
                Outcome::without_run(
                    FinalState::Failed,
                    "Azure Automation is not configured on this runner (AZURE_SUBSCRIPTION_ID, AUTOMATION_RESOURCE_GROUP, AUTOMATION_ACCOUNT).",
                )
            })?,
        };
        let local = runbook.executor == ExecutorKind::Local;
        let request = JobRequest {
            job_id: job.job_id,
            target: self.catalog.resolve_target(runbook),
            // A script takes its values by position: every parameter has its place. Automation
            // takes them by name: leave out what has no value.
            params: if local {
                runbook.argv(&given)
            } else {
                runbook.with_defaults(&given)
            },
            timeout: runbook.timeout,
            // A local job was started when its message carries the start mark; an Automation
            // job is found by name, so a redelivery is only worth logging.
            redelivered: if local {
                job.started_at.is_some()
            } else {
                dequeue_count > 1
            },
        };
        Ok(Prepared {
            request,
            executor,
            local,
        })
    }

    /// Delivers the final status, retrying transient failures for `final_notify_patience`.
    async fn notify_final(&self, job: &JobMessage, outcome: &Outcome) -> Result<(), NotifyError> {
        let update = Update::Finished(outcome.clone());
        let deadline = tokio::time::Instant::now() + self.settings.final_notify_patience;
        let mut wait = Duration::from_millis(500);
        loop {
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
            wait = (wait * 2).min(Duration::from_secs(15));
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
