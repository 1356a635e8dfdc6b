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
//! 2. A message this runner cannot read goes to `<queue>-poison` at once, with the reason.
//! 3. From then on the message is held (`extender`): its invisibility is extended while this
//!    runner works on it (the checks below, the job, the delivery of its final status), so no
//!    other runner takes it. A message delivered more than `max_dequeue` times goes to the
//!    poison queue and the requester is told, unless the job was seen running or Azure
//!    Automation holds it back (`give_up`). A `kind: stop` message is passed on to its target
//!    (`stop`).
//! 4. The job's record decides who runs it (`ownership`): this runner when it created the
//!    record or took it over from a dead runner; a job that ended is reported (once) or its
//!    message deleted; a job another live runner holds is waited on, never run twice.
//! 5. The catalog and the caller are checked again (`prepare`): `Refused` when they no longer
//!    allow the job (unless Azure Automation has a job of its name already: one created under
//!    rules that allowed it is followed). A job not yet started whose request is older than `max_job_age` is not
//!    started (`Expired`). A local job that had started under a runner now dead is reported
//!    `Interrupted` (its supervisor killed the script when its runner died); an Automation job
//!    is followed by name.
//! 6. The record is marked running just before the start, and its heartbeat renewed while the
//!    job runs (`watch`), which also passes on stop requests.
//! 7. The final state goes into the record, then the final status is posted (`report`), the
//!    record marked reported, and only then is the message deleted; when Slack refuses it for
//!    good, the message goes to the poison queue with the outcome.
//!
//! Delivery is at-least-once, so every step is safe to repeat. A failure that may pass leaves
//! the message to come back when its invisibility ends. A job still running when the runner's
//! shutdown grace ends is handed over (`leave`): its record lets go of it and its message is made
//! visible at once, so another runner takes it up without waiting for either to lapse.

use crate::executor::{Executor, FinalState, Outcome, StopSignal, TransientError};
use crate::notify::{Notifier, Update};
use chatops_shared::audit::{AuditEvent, AuditLog};
use chatops_shared::catalog::LiveCatalog;
use chatops_shared::job::{DecodeError, JobKeys, JobKind, JobMessage};
use chatops_shared::membership::{self, Membership};
use chatops_shared::queue::{JobQueue, PoisonRecord, QueueError, Received};
use chatops_shared::records::{ExecutorRef, JobState, Records, Versioned};
use extender::{Extender, Held};
use finish::Start;
use held::{HeldJobs, Hold};
use leave::Leaving;
use ownership::Owned;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use tracing::Instrument;

mod extender;
mod finish;
mod give_up;
mod held;
mod kept;
mod leave;
mod mask;
mod ownership;
mod poll;
mod prepare;
mod report;
mod settings;
mod stop;
mod watch;

pub use extender::MIN_VISIBILITY;
pub use settings::{DEFAULT_OUTPUT_KEEP, WorkerSettings, new_runner_id};

/// What a runner that owns a job has to do with it.
enum Todo {
    /// Run it: its record, and whether a runner had started it before.
    Run {
        record: Box<Versioned>,
        started: bool,
    },
    /// Post this final status (the job ended under a runner that died before posting it).
    Report(Outcome),
}

/// How a job this runner owns went.
#[derive(Debug)]
enum Ran {
    /// The job has a final outcome: it ran, was found interrupted, or was not started.
    Finished(Outcome),
    /// Not started, or not seen to its end, for a reason that may pass: the message is left
    /// for a retry.
    Retry(TransientError),
    /// Another runner holds the job now (this one was taken for dead): it runs and reports it.
    TakenOver,
    /// Not started: the runner is shutting down. The job is handed over.
    NotStarted,
}

/// A script whose runner stopped after marking its start.
fn interrupted_script() -> Outcome {
    Outcome::without_run(
        FinalState::Interrupted,
        "the runner running this script stopped before it reported the end (its supervisor \
         killed the script when it did), so the script may have run in part, in full or not at \
         all; it was not run again",
    )
}

impl From<Outcome> for Ran {
    fn from(outcome: Outcome) -> Self {
        Ran::Finished(outcome)
    }
}

/// How the handling of a job message ended.
enum Ended {
    /// The final status was posted: delete the message.
    Reported,
    /// Left for a retry: the message comes back.
    Retry,
    /// Another runner took the job over (this one was taken for dead): it reports it.
    TakenOver,
    /// Not ended when the shutdown grace did, or (`started` false) not started as shutdown
    /// began: handed over to the next runner.
    Left { started: bool },
    /// To the poison queue, with the reason. With `reported`, once it is there the record is
    /// marked reported with that note (the final status failed for good: no copy of the
    /// message is to post it again); a move that fails leaves the message, and the record, to
    /// try the final status again when it comes back.
    Poison {
        reason: String,
        reported: Option<String>,
    },
}

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
    /// Job records: who holds which job, and how it ended.
    records: Records,
    /// Where job starts, ends and stops are recorded.
    audit: AuditLog,
    /// The catalog in force; every job is checked against it before it runs.
    catalog: Arc<LiveCatalog>,
    /// A message runs only when its `mac` verifies under one of these.
    job_keys: Arc<JobKeys>,
    executors: Executors,
    notifier: Arc<dyn Notifier>,
    settings: WorkerSettings,
    /// Jobs this runner is seeing through now; further deliveries of them go to them.
    held: HeldJobs,
    /// User-group membership for the re-check of `usergroups` and `only` rules.
    membership: Membership,
    /// Set when the shutdown grace is over: jobs still running hand themselves over.
    leaving: Leaving,
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
        records: Records,
        catalog: impl Into<Arc<LiveCatalog>>,
        job_keys: JobKeys,
        executors: Executors,
        notifier: Arc<dyn Notifier>,
        settings: WorkerSettings,
    ) -> Self {
        Worker {
            queue,
            records,
            audit: AuditLog::discard(),
            catalog: catalog.into(),
            job_keys: Arc::new(job_keys),
            executors,
            notifier,
            settings,
            held: HeldJobs::default(),
            membership: Membership::new(None, membership::DEFAULT_TTL),
            leaving: Leaving::default(),
        }
    }

    /// Asks Slack about user groups through `membership` when re-checking jobs.
    pub fn with_membership(mut self, membership: Membership) -> Self {
        self.membership = membership;
        self
    }

    /// This runner's name in job records and the audit log.
    pub fn runner_id(&self) -> &str {
        &self.settings.runner_id
    }

    /// Records job starts, ends and stops in `audit`.
    pub fn with_audit(mut self, audit: AuditLog) -> Self {
        self.audit = audit;
        self
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
                let trace_id = job
                    .traceparent
                    .as_deref()
                    .and_then(chatops_shared::telemetry::trace::trace_id);
                let span = tracing::info_span!("job", job_id = %job.job_id, runbook = %job.runbook, dequeue = message.dequeue_count, trace_id);
                chatops_shared::telemetry::trace::continue_trace(&span, job.traceparent.as_deref());
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
        let dequeue_count = message.dequeue_count;
        // Runs until the message is deleted or handed back, so no other runner takes it while
        // this one works on it: from the first remote call (the checks of a message over the
        // limit and of a stop may outlast its visibility) until the final status is delivered.
        let extender = Extender::start(self.queue.clone(), message, hold, self.settings.visibility);
        if dequeue_count > self.settings.max_dequeue {
            match self.over_limit(&job, dequeue_count).await {
                give_up::OverLimit::Follow => tracing::warn!(
                    deliveries = dequeue_count,
                    "delivered more often than the limit, but the job was seen running (or Azure Automation holds it back) and has not ended: following it rather than giving up"
                ),
                give_up::OverLimit::GiveUp => {
                    let held = extender.stop().await;
                    if held.lost {
                        // Its pop receipt is stale: moved to the poison queue, it could not be
                        // deleted. The next delivery gives up on it.
                        tracing::warn!("lost hold of a message to give up on; it comes back");
                        return;
                    }
                    self.give_up(&held.message, &job).await;
                    for copy in &held.copies {
                        self.delete(copy).await;
                    }
                    return;
                }
                give_up::OverLimit::Retry => {
                    extender.stop().await;
                    return;
                }
            }
        }
        if job.kind == JobKind::Stop {
            self.handle_stop(extender, job).await;
            return;
        }

        let _in_flight = crate::metrics::job_started();
        // Steps awaited once (owning, recording, the final post) are boxed here and below:
        // the future of a job lives as long as the job, and an unboxed step would make every
        // followed job as large as its largest step for its whole life (11 KB instead of a
        // few; thousands of followed Automation jobs add up).
        let owned = match Box::pin(self.own(&job, &extender)).await {
            Ok(owned) => owned,
            Err(e) => {
                tracing::warn!(error = %e, "could not settle who runs the job; leaving the message for a retry");
                extender.stop().await;
                return;
            }
        };
        let (name, todo) = match owned {
            Owned::Reported => {
                tracing::info!("the job ended and was reported already; deleting this message");
                let held = extender.stop().await;
                self.delete_all(&held).await;
                return;
            }
            Owned::Unreported(record) => {
                tracing::info!("the job ended but its final status was not posted; posting it");
                let outcome = finish::outcome_of(&record.record);
                (record.name, Todo::Report(outcome))
            }
            Owned::Run { record, started } => {
                let name = record.name.clone();
                (name, Todo::Run { record, started })
            }
        };
        // The heartbeat and stop requests are watched until the final status is delivered:
        // a copy of the message elsewhere waits while this runner is alive.
        let (stop, stop_signal) = StopSignal::new();
        let work = self.run_and_report(&job, todo, dequeue_count, stop_signal);
        let ended = tokio::select! {
            ended = work => ended,
            holder = self.watch(&name, &stop) => {
                tracing::warn!(%holder, "the job's record names another holder: this runner was taken for dead; leaving the job to it");
                Ended::TakenOver
            }
        };
        let held = extender.stop().await;
        match ended {
            Ended::Reported => self.delete_all(&held).await,
            Ended::Retry | Ended::TakenOver => {
                // The message comes back when the visibility of its last extension ends.
            }
            Ended::Left { started } => self.hand_over(&name, &held, started).await,
            Ended::Poison { reason, reported } => {
                if self.poison(&held.message, reason).await {
                    // The copies first: no longer extended, one that came back during a slow
                    // record write would be taken up by another runner.
                    for copy in &held.copies {
                        self.delete(copy).await;
                    }
                    if let Some(note) = reported {
                        Box::pin(self.record_reported(&job, Some(note))).await;
                    }
                }
            }
        }
    }

    /// Runs the job (unless it ended already), records its end, posts the final status and
    /// marks it reported.
    async fn run_and_report(
        &self,
        job: &JobMessage,
        todo: Todo,
        dequeue_count: u32,
        stop: StopSignal,
    ) -> Ended {
        let (outcome, recorded) = match todo {
            Todo::Run { record, started } => {
                // Only a job still running is handed over when the shutdown grace ends: one
                // that has ended (a script that exited, its output still being read) or has its
                // outcome is reported here (within the hand-over limit), so that its end is
                // neither lost nor posted twice.
                let ended = AtomicBool::new(false);
                let ran = tokio::select! {
                    ran = self.run_owned(job, *record, started, dequeue_count, stop, &ended) => ran,
                    () = self.leaving.wait_unless_ended(&ended) => return Ended::Left { started: true },
                };
                match ran {
                    Ran::Finished(outcome) => {
                        let outcome = self.secret_values(job).mask_outcome(outcome);
                        match Box::pin(self.record_final(job, outcome.clone())).await {
                            Ok(Some(outcome)) => (outcome, true),
                            Ok(None) => return Ended::TakenOver,
                            Err(e) => {
                                tracing::error!(error = %e, "could not write the job's final state to its record");
                                (outcome, false)
                            }
                        }
                    }
                    Ran::Retry(e) => {
                        tracing::warn!(error = %e, "job hit a transient error; leaving the message for a retry");
                        return Ended::Retry;
                    }
                    Ran::TakenOver => return Ended::TakenOver,
                    Ran::NotStarted => return Ended::Left { started: false },
                }
            }
            Todo::Report(outcome) => (outcome, true),
        };
        tracing::info!(state = outcome.state.label(), "job finished");
        crate::metrics::job_finished(outcome.state.label());
        let notified = Box::pin(self.notify_final(job, &outcome)).await;
        match (notified, recorded) {
            (Ok(()), true) => {
                Box::pin(self.record_reported(job, None)).await;
                Ended::Reported
            }
            // Posted; the message must not come back to a record that still says running.
            (Ok(()), false) => Ended::Poison {
                reason: format!(
                    "job ended {} and was reported, but its record could not be written",
                    outcome.state.label()
                ),
                reported: None,
            },
            (Err(e), _) => {
                let reason = format!(
                    "job ended {} but the final Slack notification failed: {e}",
                    outcome.state.label()
                );
                // The status the channel did not get, for the operator who reads this log.
                let status = crate::notify::render::text(job, &Update::Finished(outcome.clone()));
                tracing::error!(%reason, %status, "moving message to the poison queue");
                Ended::Poison {
                    reported: Some(format!("{reason}; the message is on the poison queue")),
                    reason,
                }
            }
        }
    }

    /// Runs a job this runner owns to its end, by the start rules of its kind.
    async fn run_owned(
        &self,
        job: &JobMessage,
        record: Versioned,
        started: bool,
        dequeue_count: u32,
        stop: StopSignal,
        ended: &AtomicBool,
    ) -> Ran {
        // A script a runner marked for its start is never run again, nor checked again, whatever
        // the catalog says now (it may have made the runbook an Automation one meanwhile).
        if started && matches!(record.record.executor, Some(ExecutorRef::Local { .. })) {
            return Ran::Finished(interrupted_script());
        }
        let reached = prepare::Reached::of(&record.record);
        let prepared = match Box::pin(self.prepare(job, dequeue_count, stop, reached)).await {
            Ok(prepared) => prepared,
            Err(ran) => return ran,
        };
        let name = record.name.clone();
        if let Some(request) = &record.record.stop
            && !started
        {
            let mut outcome =
                Outcome::without_run(FinalState::Stopped, "stopped before it started");
            outcome.stopped_by = Some(request.by.clone());
            return Ran::Finished(outcome);
        }
        let expired = self.expired(job);
        let executor = prepared.executor.clone();
        let request = prepared.request.clone();
        if prepared.local {
            // An older runner's start mark on the message counts as a start.
            if started || job.started_at.is_some() {
                return Ran::Finished(interrupted_script());
            }
            if let Some(outcome) = expired {
                return Ran::Finished(outcome);
            }
        }
        let reference = if prepared.local {
            Some(ExecutorRef::Local {
                host: self.settings.runner_id.clone(),
                pgid: 0,
            })
        } else {
            expired.is_none().then(|| ExecutorRef::Automation {
                job_name: job.job_id.hyphenated().to_string(),
            })
        };
        // Nothing new starts once shutdown began: a script would be killed at the grace's end,
        // part run; the next runner starts it whole.
        if reference.is_some() && !started && self.leaving.is_stopping() {
            tracing::info!("shutting down: the job is handed over, not started");
            return Ran::NotStarted;
        }
        if let Some(reference) = reference {
            match Box::pin(self.record_running(&name, reference)).await {
                Ok(Start::Go) => {}
                Ok(Start::TakenOver) => return Ran::TakenOver,
                Ok(Start::StoppedBy(by)) => {
                    let mut outcome =
                        Outcome::without_run(FinalState::Stopped, "stopped before it started");
                    outcome.stopped_by = Some(by);
                    return Ran::Finished(outcome);
                }
                Err(e) => {
                    return Ran::Retry(TransientError(format!(
                        "could not mark the job as started in its record, so it was not started: {e}"
                    )));
                }
            }
        }
        let run = async {
            // An Automation job that may exist already (taken over, or too old to start) is
            // looked up first; it is started only when it is not there and may still start.
            if !prepared.local && (started || expired.is_some()) {
                let found = self
                    .reporting(job, false, ended, |progress| {
                        executor.follow_started(&request, progress)
                    })
                    .await?;
                match (found, expired) {
                    (Some(outcome), _) => return Ok(outcome),
                    (None, Some(expired)) => return Ok(expired),
                    (None, None) => {}
                }
            }
            // Refused now, and Azure did not have it: it is not created.
            if let Some(refusal) = prepared.unless_found.clone() {
                return Ok(refusal.report(job));
            }
            // A local script's whole output is kept here; Automation keeps its own.
            self.reporting(job, prepared.local, ended, |progress| {
                executor.run(&request, progress)
            })
            .await
        };
        match run.await {
            Ok(outcome) => Ran::Finished(outcome),
            Err(e) => Ran::Retry(e),
        }
    }

    /// Deletes the job's message and the other messages for the job held with it.
    async fn delete_all(&self, held: &Held) {
        if held.lost {
            tracing::warn!(
                "this runner lost hold of the job's message and it did not come back before the job ended: it reappears when the invisibility of its last update ends, finds the job reported in its record, and is deleted"
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
                crate::metrics::poison_moved();
                self.delete(message).await;
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "could not move the message to the poison queue; it will come back");
                false
            }
        }
    }

    fn audit(&self, event: AuditEvent) {
        self.audit.record(event);
    }
}

/// The record state of a final outcome.
fn record_state(state: FinalState) -> JobState {
    match state {
        FinalState::Completed => JobState::Completed,
        FinalState::Failed => JobState::Failed,
        FinalState::Stopped => JobState::Stopped,
        FinalState::Suspended => JobState::Suspended,
        FinalState::TimedOut => JobState::TimedOut,
        FinalState::Refused => JobState::Refused,
        FinalState::Expired => JobState::Expired,
        FinalState::Interrupted => JobState::Interrupted,
    }
}
