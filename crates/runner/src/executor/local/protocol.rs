//! What the runner and its supervisor say to each other. The runner writes one [`Spec`] as
//! JSON on the supervisor's stdin and closes it; the supervisor answers on its stdout with one
//! [`Status`] JSON line per event: [`Status::Started`] (or [`Status::SpawnFailed`]), then
//! [`Status::Ended`]. Its stderr is the script's output.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// One script to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spec {
    /// Absolute path of the script, executed directly (no shell, no `PATH` lookup).
    pub program: PathBuf,
    /// The parameter values, in catalog order.
    pub args: Vec<String>,
    /// The script's whole environment.
    pub env: Vec<(String, String)>,
    /// The script's working directory.
    pub cwd: PathBuf,
    /// The script's group is stopped after this long.
    pub timeout_ms: u64,
    /// Time between SIGTERM and SIGKILL when the script is stopped at its timeout.
    pub kill_grace_ms: u64,
    /// The user and group the script runs as; `None`: the supervisor's own.
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// The runner's pid: if the supervisor's parent is already another process when it asks
    /// for a parent-death signal, the runner died before and the script is not started.
    pub runner_pid: i32,
}

/// One event of the supervisor, one JSON line each on its stdout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Status {
    /// The script runs; its process group has the id `pid`.
    Started { pid: i32 },
    /// The script could not be started: the OS error (`errno`) and its text, for the log.
    SpawnFailed { errno: Option<i32>, message: String },
    /// The script ended: its exit code, or the signal that killed it; `timed_out` when the
    /// supervisor stopped it at its timeout.
    Ended {
        code: Option<i32>,
        signal: Option<i32>,
        timed_out: bool,
    },
}

impl Status {
    /// The line the supervisor writes (newline included).
    pub fn line(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_default();
        line.push('\n');
        line
    }
}

/// How the supervisor marks the one line it may write to stderr (the output) itself.
pub const FATAL_PREFIX: &str = "[chatops-runner supervise: fatal]";
