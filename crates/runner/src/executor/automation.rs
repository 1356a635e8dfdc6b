//! Runs a job as an Azure Automation runbook job and follows it to its end.
//!
//! - The Automation job is named after the chat request's job id, so starting is exactly-once: a
//!   redelivered message (or a retried PUT) finds the job already there and follows it; no other
//!   name is ever generated.
//! - [`Progress::Running`] is sent once, when the job is first seen started (status `Running` or
//!   any later one, or a `startTime`), with Azure's start time.
//! - Polling follows [`PollSchedule`]: every 5 s at first, slowing to every 30 s for long jobs.
//!   ARM refills a subscription's read budget at 25 reads/s (1,500/min); a followed job costs at
//!   most 12 reads a minute, and 2 once it has run a few minutes, so hundreds of concurrent jobs
//!   stay inside it.
//! - Timeout: a job's age is counted from its `creationTime` as ARM reports it (so a redelivered
//!   message does not grant a job a second full timeout), or from when this runner started
//!   following it when that is later or unknown. Past `request.timeout` the job is stopped, then
//!   followed for at most [`AutomationExecutor::with_stop_wait`] until it stops, and reported
//!   `TimedOut`. A job that finishes on its own before the stop takes effect keeps its own state.
//! - A permanent ARM refusal (runbook not found, bad parameters, missing role) is a `Failed`
//!   outcome whose error is a plain reason and the job's short id; ARM's message (which names
//!   subscriptions, scopes and principal ids) goes to the log only. A transient failure that outlasts the client's retries while starting the job is a
//!   [`TransientError`], which leaves the message on the queue. Once the job exists, ARM outages
//!   are waited out inside the same delivery (`through_outages`): the worker keeps the message
//!   hidden, the job stays followed and its timeout enforced.
//! - Automation's own limits: a start refused with 429 (the account's 100 new jobs per 30 s,
//!   or its concurrent jobs) is retried with jittered backoff for at most the job's timeout,
//!   and [`Progress::Waiting`] tells the requester; a job Automation holds back (`Queued`,
//!   until a slot frees) is reported waiting, not running.
//! - Every ARM read waits its turn in the client's read budget, so many followed jobs are
//!   polled less often each rather than overrunning the subscription's read budget.
//! - [`Executor::follow_started`] follows a job only if it exists (a request too old to start).
//! - With live output on ([`AutomationExecutor::with_live_output`]), the job's Output stream is
//!   read on while it runs, at most once per tail interval, and once more when it ended, and
//!   passed on as [`Progress::Output`] (`tail`).

mod tail;

use super::arm::{ArmClient, ArmError, CreateResult, Job, JobStatus};
use super::{Executor, FinalState, JobRequest, Outcome, Progress, TransientError};
use async_trait::async_trait;
use chatops_shared::backoff::Backoff;
use chatops_shared::job::short_id;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;

/// How often the executor asks ARM for a job's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollSchedule {
    /// The interval while the job is young.
    pub initial: Duration,
    /// The longest interval.
    pub max: Duration,
    /// How long the job is polled at `initial`; after that the interval grows by a tenth of the
    /// extra time (1 s more per 10 s) up to `max`.
    pub slow_after: Duration,
}

impl Default for PollSchedule {
    fn default() -> Self {
        PollSchedule {
            initial: Duration::from_secs(5),
            max: Duration::from_secs(30),
            slow_after: Duration::from_secs(120),
        }
    }
}

impl PollSchedule {
    /// The same interval throughout (tests).
    pub fn fixed(interval: Duration) -> Self {
        PollSchedule {
            initial: interval,
            max: interval,
            slow_after: Duration::ZERO,
        }
    }

    /// The wait before the next poll of a job followed for `followed_for`.
    pub fn interval(&self, followed_for: Duration) -> Duration {
        let extra = followed_for.saturating_sub(self.slow_after) / 10;
        (self.initial + extra).min(self.max.max(self.initial))
    }
}

/// The first pause before a start refused at a limit is tried again; it doubles (jittered)
/// up to [`START_RETRY_MAX`], the length of Automation's new-jobs window.
const START_RETRY_FIRST: Duration = Duration::from_secs(2);
const START_RETRY_MAX: Duration = Duration::from_secs(30);

/// What the requester is told while Automation holds the job back (`Queued`).
const HELD_BACK: &str = "Azure Automation holds the job back until the account has a free slot \
                         (it runs as many jobs at once as its limit allows)";
/// What the requester is told while a start refused at a limit is retried.
const AT_LIMIT: &str = "Azure Automation refused to start the job for now (the account is at \
                        its limit of new or concurrent jobs); trying again";

/// How many Error-stream records go into [`Outcome::error`].
const MAX_ERROR_RECORDS: usize = 10;

/// The [`Executor`] for Azure Automation runbooks.
pub struct AutomationExecutor {
    client: Arc<ArmClient>,
    poll: PollSchedule,
    stop_wait: Duration,
    /// The longest one outage is waited out while following a job; past it the run ends
    /// `Failed` with a plain reason (the job's slot is freed, the requester is told).
    outage_patience: Duration,
    /// The live tail's interval; `None`: no live output.
    live_output: Option<Duration>,
}

impl AutomationExecutor {
    /// Defaults: [`PollSchedule::default`], a 5-minute wait for a stopped job, 10 Error-stream
    /// records quoted.
    pub fn new(client: Arc<ArmClient>) -> Self {
        AutomationExecutor {
            client,
            poll: PollSchedule::default(),
            stop_wait: Duration::from_secs(300),
            outage_patience: Duration::from_secs(30 * 60),
            live_output: None,
        }
    }

    /// Reads the job's Output stream while it runs, at most once per `interval`, and passes it
    /// on as [`Progress::Output`]; `None` (the default): only at the end.
    pub fn with_live_output(mut self, interval: Option<Duration>) -> Self {
        self.live_output = interval;
        self
    }

    pub fn with_poll(mut self, poll: PollSchedule) -> Self {
        self.poll = poll;
        self
    }

    /// How long a timed-out job is followed after the stop request before giving up on it.
    pub fn with_stop_wait(mut self, stop_wait: Duration) -> Self {
        self.stop_wait = stop_wait;
        self
    }

    /// The longest one ARM outage is waited out while a job is followed (default 30 min).
    pub fn with_outage_patience(mut self, patience: Duration) -> Self {
        self.outage_patience = patience;
        self
    }

    /// Follows the job to its end; `since` is when this runner began with it (its start's
    /// waits at Azure's limits count toward the job's timeout).
    async fn follow(
        &self,
        name: &str,
        request: &JobRequest,
        created: Option<Job>,
        progress: UnboundedSender<Progress>,
        since: Instant,
    ) -> Outcome {
        let following_since = Instant::now();
        let mut stop_requested: Option<Instant> = None;
        // Someone asked to stop the job from chat: the runner that took the stop message asked
        // Azure already; asking again here covers a job created after that request.
        let mut stop_asked = false;
        let mut announced = false;
        let mut waiting_told = false;
        let mut last_status: Option<JobStatus> = None;
        let mut live = self.live_output.map(tail::OutputTail::new);
        let mut job = match created {
            Some(job) => job,
            None => match self.poll_job(name).await {
                Ok(job) => job,
                Err(e) => return lost(&e, request),
            },
        };
        // Azure has the job: whoever takes a stop message asks Azure to stop it.
        request.stop.reached_directly();
        loop {
            if last_status.as_ref() != Some(&job.status) {
                tracing::info!(status = %job.status, "Automation job status");
                last_status = Some(job.status.clone());
            }
            if !announced && !waiting_told && job.status == JobStatus::Queued {
                let _ = progress.send(Progress::Waiting {
                    reason: HELD_BACK.to_owned(),
                });
                waiting_told = true;
            }
            if !announced && (job.status.has_started() || job.start_time.is_some()) {
                let started_at = job.start_time.unwrap_or_else(OffsetDateTime::now_utc);
                // The receiver is gone only when the worker stopped caring; keep going anyway.
                let _ = progress.send(Progress::Running {
                    started_at,
                    pgid: None,
                });
                announced = true;
            }
            if let Some(live) = live.as_mut()
                && announced
                && (live.due() || job.status.is_final())
            {
                let read = Box::pin(live.read(&self.client, name, &progress));
                if job.status.is_final() {
                    // The last read of an ended job goes before the polls, as its other reads do.
                    super::arm::urgent(read).await;
                } else {
                    read.await;
                }
            }
            if job.status.is_final() {
                let timed_out = stop_requested.is_some() && job.status == JobStatus::Stopped;
                // The requester waits for these reads: ahead of other jobs' polls.
                let finish =
                    Box::pin(self.finish(name, &job, timed_out.then_some(request.timeout)));
                return super::arm::urgent(finish).await;
            }

            if request.stop.is_requested() && !stop_asked {
                tracing::info!("a stop was asked for; asking Azure to stop the job");
                // Asked at every poll until Azure takes it: a runner that found no job yet left
                // the stop to this one, so no one else asks. Between polls, so that following
                // the job (its end, its timeout) goes on through an outage of stops alone.
                match Box::pin(self.client.stop_job(name)).await {
                    Ok(()) => stop_asked = true,
                    Err(e) if e.is_transient() => {
                        tracing::warn!(error = %e, "Azure did not take the stop request yet; asking again after the next poll");
                    }
                    // Most likely the job ended meanwhile; the next poll tells.
                    Err(e) => {
                        tracing::warn!(error = %e, "Azure refused to stop the job");
                        stop_asked = true;
                    }
                }
            }
            let age = job_age(&job, since);
            match stop_requested {
                None if age >= request.timeout => {
                    tracing::warn!(timeout = ?request.timeout, "Automation job ran too long; stopping it");
                    let stop =
                        Box::pin(self.through_outages("stop", || self.client.stop_job(name)));
                    // Most likely the job ended meanwhile; the next poll tells.
                    if let Err(e) = stop.await {
                        tracing::warn!(error = %e, "Azure refused to stop the job");
                    }
                    stop_requested = Some(Instant::now());
                }
                Some(at) if at.elapsed() >= self.stop_wait => {
                    let message = format!(
                        "the job ran longer than the {} limit; a stop was requested but the job was still {} after {}",
                        humantime::format_duration(request.timeout),
                        job.status,
                        humantime::format_duration(self.stop_wait),
                    );
                    return Outcome {
                        state: FinalState::TimedOut,
                        output: String::new(),
                        error: Some(message),
                        started_at: job.start_time,
                        ended_at: OffsetDateTime::now_utc(),
                        stopped_by: None,
                    };
                }
                _ => {}
            }

            let mut wait = self.poll.interval(following_since.elapsed());
            if stop_requested.is_none() {
                // Wake up in time to stop the job when its time is up.
                wait = wait.min(
                    request
                        .timeout
                        .saturating_sub(age)
                        .max(Duration::from_millis(1)),
                );
            }
            let mut stop = request.stop.clone();
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = stop.requested(), if !stop_asked => {}
            }
            job = match self.poll_job(name).await {
                Ok(job) => job,
                Err(e) => return lost(&e, request),
            };
        }
    }

    /// Starts the job. A start refused at one of Automation's limits (HTTP 429 that outlasted
    /// the client's own retries, or asked for a long wait: the account's 100 new jobs per
    /// 30 s, or its concurrent jobs) is tried again with growing, jittered pauses, and the
    /// requester told once that the job waits; never dropped. The wait is
    /// bounded by the job's timeout (then the last refusal is the answer) and ends on a stop.
    async fn start(
        &self,
        name: &str,
        request: &JobRequest,
        progress: &UnboundedSender<Progress>,
    ) -> Result<CreateResult, ArmError> {
        // Not the poll interval: a refused start should not be retried every few seconds
        // against a 30-second window.
        let backoff = Backoff {
            first: START_RETRY_FIRST,
            max: START_RETRY_MAX,
            jitter: true,
        };
        let began = Instant::now();
        let mut retry = 0;
        loop {
            let refused = match self
                .client
                .create_job(name, &request.target, &request.params)
                .await
            {
                Err(e) if e.status() == Some(429) => e,
                answer => return answer,
            };
            // At least what Azure asked for (the new-jobs window tells when a slot frees).
            let asked = refused
                .retry_after()
                .unwrap_or_default()
                .min(START_RETRY_MAX);
            let wait = backoff.wait(retry).max(asked);
            if began.elapsed() + wait > request.timeout || request.stop.is_requested() {
                return Err(refused);
            }
            if retry == 0 {
                tracing::warn!(error = %refused, "Azure Automation refused the start for now; trying again");
                let _ = progress.send(Progress::Waiting {
                    reason: AT_LIMIT.to_owned(),
                });
            }
            crate::metrics::retry("arm");
            let mut stop = request.stop.clone();
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = stop.requested() => {}
            }
            // Stopped while it waited: no start is sent (Azure might take it now).
            if request.stop.is_requested() {
                return Err(refused);
            }
            retry = retry.saturating_add(1);
        }
    }

    /// Reads the job, waiting out outages. A permanent error (the job vanished, the role was
    /// taken away) ends the run (see [`lost`]): polling again would not help.
    async fn poll_job(&self, name: &str) -> Result<Job, ArmError> {
        self.through_outages("follow", || self.client.get_job(name))
            .await
    }

    /// Calls ARM until it answers with anything but a transient failure. Used once the job
    /// exists: an outage that outlasts the client's own retries is waited out here, with
    /// pauses growing from the first poll interval to the longest, instead of ending the
    /// delivery (the message would come back, count as a failed delivery, and the job would go
    /// unwatched meanwhile). An outage longer than `outage_patience` (a revoked credential
    /// fails as a transient token error forever) ends the wait with that error, and the run
    /// ends as it does for a permanent one.
    async fn through_outages<T, F, Fut>(&self, doing: &str, call: F) -> Result<T, ArmError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, ArmError>>,
    {
        let backoff = Backoff {
            first: self.poll.initial,
            max: self.poll.max.max(self.poll.initial),
            jitter: false,
        };
        let mut retry = 0;
        let began = tokio::time::Instant::now();
        loop {
            match call().await {
                Err(e) if e.is_transient() => {
                    let wait = backoff.wait(retry);
                    if began.elapsed() + wait > self.outage_patience {
                        tracing::error!(error = %e, patience = ?self.outage_patience, "Azure Resource Manager has failed for too long; giving up this delivery");
                        return Err(e);
                    }
                    tracing::warn!(error = %e, ?wait, "could not {doing} the Azure Automation job; trying again");
                    tokio::time::sleep(wait).await;
                    retry = retry.saturating_add(1);
                }
                answer => return answer,
            }
        }
    }

    /// Builds the outcome of an ended job from its output, error stream and exception.
    /// `timed_out` carries the timeout when this runner stopped the job.
    async fn finish(&self, name: &str, job: &Job, timed_out: Option<Duration>) -> Outcome {
        let output = match self
            .through_outages("read the output of", || self.client.get_output(name))
            .await
        {
            Ok(output) => output,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the job's output");
                // Said where the output would be: an empty one would pass for none. ARM's own
                // message stays in the log, as with `refusal`.
                let reason = plain_status(&e);
                format!(
                    "[The job's output could not be read from Azure Automation ({reason}); it is on the job in the Azure portal, and the details are in the runner's log under job {}.]",
                    name.get(..8).unwrap_or(name)
                )
            }
        };
        let mut lines: Vec<String> = Vec::new();
        if let Some(timeout) = timed_out {
            lines.push(format!(
                "the job ran longer than the {} limit and was stopped",
                humantime::format_duration(timeout)
            ));
        }
        lines.extend(job.exception.clone());
        lines.extend(self.error_records(name).await);
        if timed_out.is_none() {
            lines.extend(fair_share_note(job));
        }
        if lines.is_empty()
            && matches!(
                job.status,
                JobStatus::Failed | JobStatus::Suspended | JobStatus::Stopped
            )
        {
            let details = job
                .status_details
                .as_deref()
                .filter(|d| !d.eq_ignore_ascii_case("none"))
                .map(|d| format!(" ({d})"))
                .unwrap_or_default();
            lines.push(format!(
                "Azure Automation reports the job {}{details}",
                job.status
            ));
        }
        let mut seen = std::collections::HashSet::new();
        lines.retain(|line| seen.insert(line.trim().to_owned()));
        let state = match job.status {
            _ if timed_out.is_some() => FinalState::TimedOut,
            JobStatus::Completed => FinalState::Completed,
            JobStatus::Stopped => FinalState::Stopped,
            JobStatus::Suspended => FinalState::Suspended,
            _ => FinalState::Failed,
        };
        Outcome {
            state,
            output,
            error: (!lines.is_empty()).then(|| lines.join("\n")),
            started_at: job.start_time,
            ended_at: job.end_time.unwrap_or_else(OffsetDateTime::now_utc),
            stopped_by: None,
        }
    }

    /// The texts of the job's Error-stream records: each record's summary, or its whole text
    /// when the summary is empty.
    async fn error_records(&self, name: &str) -> Vec<String> {
        let records = match self
            .through_outages("read the errors of", || {
                self.client.list_streams(name, Some("Error"))
            })
            .await
        {
            Ok(records) => records,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the job's error stream");
                return Vec::new();
            }
        };
        let mut texts = Vec::new();
        for record in records.iter().take(MAX_ERROR_RECORDS) {
            if let Some(summary) = &record.summary {
                texts.push(summary.trim().to_owned());
                continue;
            }
            let full = self.through_outages("read the errors of", || {
                self.client.get_stream(name, &record.id)
            });
            match full.await {
                Ok(full) => texts.extend(full.stream_text.map(|t| t.trim().to_owned())),
                Err(e) => tracing::warn!(error = %e, "could not read an error record"),
            }
        }
        if records.len() > MAX_ERROR_RECORDS {
            texts.push(format!(
                "… and {} more error records",
                records.len() - MAX_ERROR_RECORDS
            ));
        }
        texts
    }
}

#[async_trait]
impl Executor for AutomationExecutor {
    #[tracing::instrument(skip_all, fields(job_id = %request.job_id, runbook = %request.target))]
    async fn run(
        &self,
        request: &JobRequest,
        progress: UnboundedSender<Progress>,
    ) -> Result<Outcome, TransientError> {
        let name = request.job_id.hyphenated().to_string();
        let began = Instant::now();
        // Boxed, as the other steps awaited once: the job's future lives while it is followed,
        // at the size of its largest step (see the worker's `handle_job`).
        let created = match Box::pin(self.start(&name, request, &progress)).await {
            Ok(CreateResult::Created(job)) => {
                tracing::info!("Automation job created");
                Some(job)
            }
            Ok(CreateResult::AlreadyExists) => {
                tracing::info!(
                    redelivered = request.redelivered,
                    "Automation job exists already; following it"
                );
                None
            }
            Err(e) if e.status() == Some(429) && request.stop.is_requested() => {
                return Ok(Outcome::without_run(
                    FinalState::Stopped,
                    "Stopped before Azure Automation started it.",
                ));
            }
            Err(e) if e.status() == Some(429) => {
                tracing::warn!(error = %e, "Azure Automation refused the start for the whole timeout");
                return Ok(Outcome::without_run(
                    FinalState::Failed,
                    format!(
                        "Not started: Azure Automation refused new jobs for longer than the job's {} limit (the account is at its limit of new or concurrent jobs). Run the command again later.",
                        humantime::format_duration(request.timeout)
                    ),
                ));
            }
            Err(e) if e.is_transient() => return Err(transient("start", &e)),
            Err(e) => {
                tracing::warn!(error = %e, "Azure Automation refused the job");
                return Ok(Outcome::without_run(
                    FinalState::Failed,
                    refusal("start the runbook", &e, request),
                ));
            }
        };
        let outcome = self.follow(&name, request, created, progress, began).await;
        tracing::info!(state = outcome.state.label(), "Automation job ended");
        Ok(outcome)
    }

    #[tracing::instrument(skip_all, fields(job_id = %request.job_id, runbook = %request.target))]
    async fn follow_started(
        &self,
        request: &JobRequest,
        progress: UnboundedSender<Progress>,
    ) -> Result<Option<Outcome>, TransientError> {
        let name = request.job_id.hyphenated().to_string();
        let job = match self.client.get_job(&name).await {
            Ok(job) => job,
            Err(e) if e.status() == Some(404) => {
                tracing::info!("no Automation job of this name: it was never started");
                return Ok(None);
            }
            Err(e) if e.is_transient() => return Err(transient("look for", &e)),
            Err(e) => {
                tracing::warn!(error = %e, "Azure refused to look for the Automation job");
                return Ok(Some(Outcome::without_run(
                    FinalState::Failed,
                    refusal("look for the Automation job", &e, request),
                )));
            }
        };
        tracing::info!("Automation job exists; following it");
        let outcome = self
            .follow(&name, request, Some(job), progress, Instant::now())
            .await;
        tracing::info!(state = outcome.state.label(), "Automation job ended");
        Ok(Some(outcome))
    }

    async fn has_job(&self, job_id: &uuid::Uuid) -> Result<bool, TransientError> {
        match self.client.get_job(&job_id.hyphenated().to_string()).await {
            Ok(_) => Ok(true),
            Err(e) if e.status() == Some(404) => Ok(false),
            Err(e) => Err(transient("look for", &e)),
        }
    }

    async fn request_stop(&self, job_id: &uuid::Uuid) -> Result<(), TransientError> {
        let name = job_id.hyphenated().to_string();
        match self.client.stop_job(&name).await {
            Ok(()) => Ok(()),
            // Not created yet: its runner sees the stop request in the record and asks then.
            Err(e) if e.status() == Some(404) => Ok(()),
            Err(e) if e.is_transient() => Err(transient("stop", &e)),
            Err(e) => {
                // A job that has ended answers 409/400: nothing to stop.
                tracing::warn!(error = %e, "Azure refused to stop the job");
                Ok(())
            }
        }
    }
}

/// How long the job has existed: since its creation as ARM reports it, or since we started
/// following it, whichever is longer.
fn job_age(job: &Job, since: Instant) -> Duration {
    let since_created = job
        .creation_time
        .and_then(|created| Duration::try_from(OffsetDateTime::now_utc() - created).ok())
        .unwrap_or(Duration::ZERO);
    since_created.max(since.elapsed())
}

fn transient(doing: &str, error: &ArmError) -> TransientError {
    TransientError(format!(
        "could not {doing} the Azure Automation job: {error}"
    ))
}

/// How long Azure lets a job run in its cloud sandboxes before it stops it ("fair share").
pub const FAIR_SHARE: Duration = Duration::from_secs(3 * 3600);

/// Why a job Azure stopped after about [`FAIR_SHARE`] was stopped: read as a plain `Stopped`, it
/// would pass for someone's stop.
fn fair_share_note(job: &Job) -> Option<String> {
    let ran = job.end_time? - job.start_time?;
    (job.status == JobStatus::Stopped && ran >= FAIR_SHARE - Duration::from_secs(60)).then(|| {
        "Azure Automation stops a job in its cloud sandbox after 3 hours (fair share); a runbook \
         that runs longer needs a Hybrid Runbook Worker"
            .to_owned()
    })
}

/// The outcome of a job this runner can no longer follow; the details go to the log.
fn lost(error: &ArmError, request: &JobRequest) -> Outcome {
    tracing::warn!(%error, "lost track of the Automation job");
    Outcome::without_run(
        FinalState::Failed,
        refusal("report on the runbook's job", error, request),
    )
}

/// The user's explanation of an ARM refusal: a plain reason and where an operator finds the
/// rest. ARM's own message stays in the log: it names subscriptions, scopes and principal ids
/// that have no place in a channel.
fn refusal(doing: &str, error: &ArmError, request: &JobRequest) -> String {
    let reason = plain_status(error);
    format!(
        "Azure refused to {doing} ({reason}); an operator can find the details in the runner's \
         log under job {}",
        short_id(&request.job_id)
    )
}

/// An ARM failure as the user may see it: its status and [`plain_reason`], nothing of ARM's
/// own message.
fn plain_status(error: &ArmError) -> String {
    match error.status() {
        Some(status) => format!("{status}: {}", plain_reason(status)),
        None => "no usable answer".to_owned(),
    }
}

/// What an ARM status means for this runner, in words that name nothing of Azure's.
fn plain_reason(status: u16) -> &'static str {
    match status {
        400 => "Azure did not accept the request, for example the runbook's parameters",
        401 => "the runner could not sign in to Azure",
        403 => {
            "the runner's identity lacks permission (it needs the roles \"Automation Job \
             Operator\" and \"Automation Runbook Operator\" on the Automation account)"
        }
        404 => "no such runbook or job in the Automation account",
        409 => "a conflicting job exists",
        _ => "an unexpected error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polling_slows_down_for_long_jobs() {
        let poll = PollSchedule::default();
        assert_eq!(poll.interval(Duration::ZERO), Duration::from_secs(5));
        assert_eq!(
            poll.interval(Duration::from_secs(120)),
            Duration::from_secs(5)
        );
        assert_eq!(
            poll.interval(Duration::from_secs(170)),
            Duration::from_secs(10)
        );
        assert_eq!(
            poll.interval(Duration::from_secs(3600)),
            Duration::from_secs(30)
        );
        let fixed = PollSchedule::fixed(Duration::from_millis(20));
        assert_eq!(
            fixed.interval(Duration::from_secs(3600)),
            Duration::from_millis(20)
        );
    }

    #[test]
    fn a_job_azure_stopped_at_three_hours_says_why() {
        let start = OffsetDateTime::now_utc();
        let job = |status, ran: Duration| Job {
            status,
            status_details: None,
            creation_time: Some(start),
            start_time: Some(start),
            end_time: Some(start + ran),
            exception: None,
        };
        let three_hours = job(JobStatus::Stopped, FAIR_SHARE + Duration::from_secs(2));
        assert!(fair_share_note(&three_hours).is_some_and(|n| n.contains("3 hours")));
        assert_eq!(
            fair_share_note(&job(JobStatus::Stopped, Duration::from_secs(600))),
            None
        );
        assert_eq!(
            fair_share_note(&job(JobStatus::Completed, FAIR_SHARE)),
            None
        );
    }

    #[test]
    fn refusals_are_plain_and_name_the_job() {
        let e = ArmError::Api {
            status: 403,
            code: "AuthorizationFailed".into(),
            message: "The client with object id '1111' over scope '/subscriptions/2222'".into(),
            retry_after: None,
        };
        let request = JobRequest {
            job_id: uuid::Uuid::parse_str("1a2b3c4d-0000-5000-8000-000000000000").unwrap(),
            target: "r".into(),
            params: Vec::new(),
            secret: Vec::new(),
            timeout: Duration::from_secs(1),
            redelivered: false,
            stop: crate::executor::StopSignal::never(),
        };
        let text = refusal("start the runbook", &e, &request);
        assert!(
            text.starts_with(
                "Azure refused to start the runbook (403: the runner's identity lacks permission"
            ),
            "{text}"
        );
        assert!(
            text.ends_with(
                "an operator can find the details in the runner's log under job 1a2b3c4d"
            ),
            "{text}"
        );
        assert!(text.contains("Automation Job Operator"), "{text}");
        for leak in ["1111", "2222", "AuthorizationFailed", "subscriptions"] {
            assert!(!text.contains(leak), "{leak} in {text}");
        }
    }
}
