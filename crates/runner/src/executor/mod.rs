//! Executors run a job to its end: Azure Automation over ARM ([`automation`]) or a local script
//! ([`local`], the embedded default). The catalog chooses one per runbook.

pub mod arm;
pub mod automation;
pub mod local;

use async_trait::async_trait;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::mpsc::UnboundedSender;
use uuid::Uuid;

/// What an executor needs to run one job.
#[derive(Debug, Clone)]
pub struct JobRequest {
    /// The job id; Azure Automation's job name.
    pub job_id: Uuid,
    /// Automation runbook name, or the resolved script path for local jobs.
    pub target: String,
    /// Parameters in catalog order, defaults filled in.
    pub params: Vec<(String, String)>,
    /// The names of the secret parameters: a local script gets their values in its
    /// environment only, never in argv (which `ps` shows).
    pub secret: Vec<String>,
    /// The job is stopped and reported as TimedOut when it runs longer than this.
    pub timeout: Duration,
    /// The message was delivered before (only logged: an Automation job is found by name; a
    /// local job started before is never given to the executor, see the worker).
    pub redelivered: bool,
    /// Fires when someone asks to stop the job (`/runbook stop`).
    pub stop: StopSignal,
}

/// Tells an executor that someone asked to stop its job. Cheap to clone.
///
/// It also carries, back to the worker, whether stop requests now reach the job without it
/// ([`StopSignal::reached_directly`]): an Automation job, once created, is stopped by Azure at
/// the request of whichever runner takes the stop message, so its holder need not read the
/// job's record often for stop requests.
#[derive(Debug, Clone)]
pub struct StopSignal {
    stop: tokio::sync::watch::Receiver<bool>,
    direct: Arc<AtomicBool>,
}

/// The sending side of a [`StopSignal`], kept by the worker.
#[derive(Debug)]
pub struct StopSender {
    stop: tokio::sync::watch::Sender<bool>,
    direct: Arc<AtomicBool>,
}

impl StopSignal {
    /// A signal and its sender.
    pub fn new() -> (StopSender, StopSignal) {
        let (sender, receiver) = tokio::sync::watch::channel(false);
        let direct = Arc::new(AtomicBool::new(false));
        (
            StopSender {
                stop: sender,
                direct: direct.clone(),
            },
            StopSignal {
                stop: receiver,
                direct,
            },
        )
    }

    /// A signal that never fires.
    pub fn never() -> StopSignal {
        StopSignal::new().1
    }

    pub fn is_requested(&self) -> bool {
        *self.stop.borrow()
    }

    /// Waits until a stop is asked for; forever when it never is.
    pub async fn requested(&mut self) {
        if self.stop.wait_for(|stop| *stop).await.is_err() {
            // The sender is gone without asking: no stop will come.
            std::future::pending::<()>().await;
        }
    }

    /// From now on a stop request reaches the job without this signal (Azure has the job, and
    /// the runner that takes a stop message asks Azure to stop it).
    pub fn reached_directly(&self) {
        self.direct.store(true, Ordering::Relaxed);
    }
}

impl StopSender {
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Whether the executor said stop requests now reach the job without this sender.
    pub fn is_reached_directly(&self) -> bool {
        self.direct.load(Ordering::Relaxed)
    }
}

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalState {
    Completed,
    Failed,
    Stopped,
    /// Azure Automation suspended the job; it waits for a resume that this runner does not do.
    Suspended,
    TimedOut,
    /// The runner's own re-check of the catalog and the caller said no.
    Refused,
    /// The runner that ran it died; a local script was killed with it (its supervisor sees
    /// the runner go), so it may have run in part.
    Interrupted,
    /// Not started: the request was older than `CHATOPS_MAX_JOB_AGE` when a runner took it.
    Expired,
}

impl FinalState {
    pub fn label(self) -> &'static str {
        match self {
            FinalState::Completed => "Completed",
            FinalState::Failed => "Failed",
            FinalState::Stopped => "Stopped",
            FinalState::Suspended => "Suspended",
            FinalState::TimedOut => "TimedOut",
            FinalState::Refused => "Refused",
            FinalState::Interrupted => "Interrupted",
            FinalState::Expired => "Expired",
        }
    }
}

/// A change the executor reports while the job runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The job started (or an already started job was found and is being followed). `pgid`:
    /// a local script's process group.
    Running {
        started_at: OffsetDateTime,
        pgid: Option<i32>,
    },
    /// New output of the running job, as it comes (a script's stdout and stderr in arrival
    /// order; Automation's Output-stream records), for the live tail in the job's thread. Sent
    /// only by executors built with live output on; the final [`Outcome::output`] has it too.
    Output { text: String },
    /// The job is not running yet and waits on Azure Automation's limits: held back
    /// (`Queued`) while the account runs as many jobs as it may, or its start refused for now
    /// and being retried. `reason` is plain words for the requester.
    Waiting { reason: String },
    /// The job ended, and its outcome is being gathered (a script's last output read, its
    /// `HOME` removed). Sent by the local executor: no other runner could learn how a script
    /// ended, so from here on a runner that is shutting down reports the job rather than hand
    /// it over.
    Ended,
}

/// The end of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub state: FinalState,
    /// Output stream (Automation `Output`; a script's stdout and stderr in arrival order).
    pub output: String,
    /// What went wrong, in the user's terms (error stream, exception, exit code, timeout).
    pub error: Option<String>,
    pub started_at: Option<OffsetDateTime>,
    pub ended_at: OffsetDateTime,
    /// Slack user ID of who stopped the job (`/runbook stop`), when someone did.
    pub stopped_by: Option<String>,
}

impl Outcome {
    /// An outcome for a job that ended without running (refused, interrupted, rejected by Azure).
    pub fn without_run(state: FinalState, error: impl Into<String>) -> Self {
        Outcome {
            state,
            output: String::new(),
            error: Some(error.into()),
            started_at: None,
            ended_at: OffsetDateTime::now_utc(),
            stopped_by: None,
        }
    }
}

/// A failure that may go away: the message is left on the queue to be tried again.
/// Permanent failures are not errors: they are an [`Outcome`] with [`FinalState::Failed`].
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("{0}")]
pub struct TransientError(pub String);

/// Runs one job to a final state.
#[async_trait]
pub trait Executor: Send + Sync {
    /// Starts the job (or finds the one already started under `job_id`) and follows it to its
    /// end, sending [`Progress`] as it goes. Must stop the job and return `TimedOut` after
    /// `request.timeout`.
    async fn run(
        &self,
        request: &JobRequest,
        progress: UnboundedSender<Progress>,
    ) -> Result<Outcome, TransientError>;

    /// Follows the job to its end, like [`Executor::run`], when it was started already (by any
    /// runner); never starts it. `None`: it was not started. An executor that cannot find a job
    /// started elsewhere always answers `None` (local scripts: the start mark on the queue
    /// message tells instead).
    async fn follow_started(
        &self,
        _request: &JobRequest,
        _progress: UnboundedSender<Progress>,
    ) -> Result<Option<Outcome>, TransientError> {
        Ok(None)
    }

    /// Whether a job of this id exists outside the runner (Azure Automation: `GET jobs/{name}`
    /// answers), whatever its state. `Err`: the executor could not say. An executor whose jobs
    /// live in the runner always answers `false`.
    async fn has_job(&self, _job_id: &Uuid) -> Result<bool, TransientError> {
        Ok(false)
    }

    /// Asks for a job running elsewhere to stop, for executors whose jobs live outside the
    /// runner (Azure Automation: `POST jobs/{name}/stop`). Local scripts are stopped by the
    /// runner that holds them, through [`JobRequest::stop`]: this does nothing.
    async fn request_stop(&self, _job_id: &Uuid) -> Result<(), TransientError> {
        Ok(())
    }
}
