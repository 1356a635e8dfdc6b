//! [`WorkerSettings`]: the worker's tunables, all from configuration.

use chatops_shared::workspaces::Workspaces;
use std::time::Duration;

/// Bytes of a local script's output kept whole by default: 10 MiB.
pub const DEFAULT_OUTPUT_KEEP: u64 = 10 * 1024 * 1024;

/// Tunables, all from configuration.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// How long a taken message stays invisible; extended every third of it while a job runs.
    pub visibility: Duration,
    /// Deliveries after which a message is given up on (Azure Functions uses 5). Deliveries
    /// handed to a job still held by this runner do not get this far.
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
    /// A job not started yet whose request is older than this is not started (`Expired`).
    pub max_job_age: Duration,
    /// This runner's name in job records: unique per process ([`new_runner_id`]).
    pub runner_id: String,
    /// How often the record of a running job is read, for stop requests (and how often a
    /// second message for a job another runner holds looks at its record).
    pub record_poll: Duration,
    /// `CHATOPS_OUTPUT_KEEP`: bytes of a local script's output kept whole next to its record
    /// (`chatops-runner output <job-id>`).
    pub output_keep: u64,
    /// `SLACK_TEAM_ID`, `SLACK_ENTERPRISE_ID`: the workspaces whose jobs are run (all unless set).
    pub workspaces: Workspaces,
}

impl WorkerSettings {
    /// How often the holder of a job renews its heartbeat in the record.
    pub fn heartbeat(&self) -> Duration {
        (self.visibility / 3).max(Duration::from_millis(200))
    }

    /// A holder whose heartbeat is older than this is dead: its message's invisibility (which
    /// it extends as often as it beats) has lapsed too.
    pub fn dead_after(&self) -> Duration {
        self.visibility
    }
}

/// A name for this runner process, unique per process: the name it writes the audit log under
/// (host name, process id and 4 random hex digits, see `chatops_shared::audit::writer_id`).
pub fn new_runner_id() -> String {
    chatops_shared::audit::writer_id()
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
            max_job_age: Duration::from_secs(3600),
            runner_id: new_runner_id(),
            record_poll: Duration::from_secs(2),
            output_keep: DEFAULT_OUTPUT_KEEP,
            workspaces: Workspaces::default(),
        }
    }
}
