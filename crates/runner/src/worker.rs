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

use crate::executor::{Executor, FinalState, JobRequest, Outcome, Progress};
use crate::notify::{Notifier, NotifyError, Update};
use chatops_shared::catalog::{Caller, Catalog, ExecutorKind};
use chatops_shared::command::Arg;
use chatops_shared::job::JobMessage;
use chatops_shared::queue::{JobQueue, PoisonRecord, QueueError, Received};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, Semaphore};
use tracing::Instrument;

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
            final_notify_patience: Duration::from_secs(120),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// A competing consumer of the job queue.
#[derive(Clone)]
pub struct Worker {
    queue: Arc<dyn JobQueue>,
    catalog: Arc<Catalog>,
    executors: Executors,
    notifier: Arc<dyn Notifier>,
    settings: WorkerSettings,
}

impl Worker {
    pub fn new(
        queue: Arc<dyn JobQueue>,
        catalog: Arc<Catalog>,
        executors: Executors,
        notifier: Arc<dyn Notifier>,
        settings: WorkerSettings,
    ) -> Self {
        Worker {
            queue,
            catalog,
            executors,
            notifier,
            settings,
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

    /// Polls and handles messages until `shutdown` completes, then gives in-flight jobs
    /// `shutdown_grace` to finish.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send) {
        let slots = Arc::new(Semaphore::new(self.settings.concurrency.max(1)));
        let mut in_flight = tokio::task::JoinSet::new();
        let mut idle = Duration::from_millis(50);
        tokio::pin!(shutdown);
        loop {
            // Reap finished jobs so the set does not grow.
            while in_flight.try_join_next().is_some() {}
            let permit = tokio::select! {
                () = &mut shutdown => break,
                permit = slots.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
            };
            let free = slots.available_permits() + 1;
            let batch = u8::try_from(free.min(32)).unwrap_or(32);
            let received = tokio::select! {
                () = &mut shutdown => break,
                r = self.queue.receive(batch, self.settings.visibility) => r,
            };
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
                        let permit = match permit.take() {
                            Some(p) => p,
                            // Received several: each needs a slot; we asked for no more than free.
                            None => match slots.clone().try_acquire_owned() {
                                Ok(p) => p,
                                Err(_) => break,
                            },
                        };
                        let worker = self.clone();
                        in_flight.spawn(async move {
                            worker.handle(message).await;
                            drop(permit);
                        });
                    }
                    Duration::ZERO
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the queue; backing off");
                    idle = (idle * 2)
                        .min(Duration::from_secs(5))
                        .max(Duration::from_millis(500));
                    idle
                }
            };
            if !wait.is_zero() {
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
        tracing::info!(
            jobs = in_flight.len(),
            "stopped taking messages; waiting for jobs in flight"
        );
        let drain = async { while in_flight.join_next().await.is_some() {} };
        if tokio::time::timeout(self.settings.shutdown_grace, drain)
            .await
            .is_err()
        {
            tracing::warn!(
                "jobs still running after the shutdown grace; their messages return to the queue"
            );
            in_flight.abort_all();
        }
    }

    /// Sees one message through. Never returns an error: every failure ends in a retry (the
    /// message is left to come back) or in the poison queue.
    async fn handle(&self, message: Received) {
        let job = match JobMessage::decode(&message.text) {
            Ok(job) => job,
            Err(e) => {
                tracing::warn!(message_id = %message.message_id, reason = %e, "unreadable message");
                self.poison(&message, format!("unreadable job message: {e}"))
                    .await;
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
            self.poison(&message, reason).await;
            return;
        }

        let current = Arc::new(Mutex::new(message));
        let keep_invisible = self.spawn_visibility_extender(current.clone());
        let result = self.run_job(&job, current.lock().await.dequeue_count).await;
        keep_invisible.abort();
        let message = current.lock().await.clone();

        let outcome = match result {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::warn!(error = %e, "job hit a transient error; leaving the message for a retry");
                return;
            }
        };
        tracing::info!(state = outcome.state.label(), "job finished");
        match self.notify_final(&job, &outcome).await {
            Ok(()) => self.delete(&message).await,
            Err(e) => {
                let reason = format!(
                    "job ended {} but the final Slack notification failed: {e}",
                    outcome.state.label()
                );
                tracing::error!(%reason, "moving message to the poison queue");
                self.poison(&message, reason).await;
            }
        }
    }

    /// Re-checks the command against the catalog, runs it, and reports progress.
    async fn run_job(
        &self,
        job: &JobMessage,
        dequeue_count: u32,
    ) -> Result<Outcome, crate::executor::TransientError> {
        let (request, executor) = match self.prepare(job, dequeue_count) {
            Ok(prepared) => prepared,
            Err(outcome) => return Ok(outcome),
        };
        let (progress_tx, mut progress_rx) = tokio::sync::mpsc::unbounded_channel();
        let run = executor.run(&request, progress_tx);
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
    fn prepare(
        &self,
        job: &JobMessage,
        dequeue_count: u32,
    ) -> Result<(JobRequest, Arc<dyn Executor>), Outcome> {
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
        let request = JobRequest {
            job_id: job.job_id,
            target: self.catalog.resolve_target(runbook),
            params: runbook.with_defaults(&given),
            timeout: runbook.timeout,
            redelivered: dequeue_count > 1,
        };
        Ok((request, executor))
    }

    /// Keeps the message invisible while its job runs, so no other runner takes it.
    fn spawn_visibility_extender(
        &self,
        current: Arc<Mutex<Received>>,
    ) -> tokio::task::JoinHandle<()> {
        let queue = self.queue.clone();
        let visibility = self.settings.visibility;
        let every = (visibility / 3).max(Duration::from_millis(200));
        tokio::spawn(
            async move {
                loop {
                    tokio::time::sleep(every).await;
                    let mut message = current.lock().await;
                    match queue.extend(&message, visibility).await {
                        Ok(pop_receipt) => message.pop_receipt = pop_receipt,
                        Err(e) => tracing::warn!(error = %e, "could not extend the message's invisibility"),
                    }
                }
            }
            .in_current_span(),
        )
    }

    /// Delivers the final status, retrying transient failures for `final_notify_patience`.
    async fn notify_final(&self, job: &JobMessage, outcome: &Outcome) -> Result<(), NotifyError> {
        let update = Update::Finished(outcome.clone());
        let deadline = tokio::time::Instant::now() + self.settings.final_notify_patience;
        let mut wait = Duration::from_millis(500);
        loop {
            match self.notifier.notify(job, &update).await {
                Ok(()) => return Ok(()),
                Err(NotifyError::Transient(e)) if tokio::time::Instant::now() + wait < deadline => {
                    tracing::warn!(error = %e, "final notification failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(15));
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn delete(&self, message: &Received) {
        if let Err(e) = self.queue.delete(message).await {
            // The message will come back; its job is followed again, not run twice.
            tracing::warn!(error = %e, "could not delete the finished job's message");
        }
    }

    async fn poison(&self, message: &Received, reason: String) {
        let record = PoisonRecord::new(message, reason);
        match self.queue.send_poison(&record.encode()).await {
            Ok(()) => self.delete(message).await,
            Err(e) => {
                tracing::error!(error = %e, "could not move the message to the poison queue; it will come back")
            }
        }
    }
}
