//! Runs a runbook as a local script: the embedded default and the demo's executor.
//!
//! The script is executed directly, never through a shell: its arguments are the parameter
//! values in catalog order, so nothing a user typed is ever parsed as shell syntax. It gets a
//! cleared environment (only `PATH`, `LANG`, a fresh empty `HOME`, `CHATOPS_JOB_ID` and one
//! `CHATOPS_PARAM_<NAME>` per parameter), so the runner's secrets never reach it. It is
//! started through a [`supervisor`] (`chatops-runner supervise`) that runs it in a process
//! group of its own, as the script [`user`], stops the group at the timeout and kills it when
//! the runner dies. See `docs/security.md`.
//!
//! - `launch`: starting the supervisor and learning whether the script started;
//! - `protocol`: what the runner and the supervisor say to each other;
//! - `output`: the output pipe's bounded tail, and its chunks for the live tail;
//! - `home`: the per-job `HOME`, in the runner's own directory of homes ([`Homes`]).

mod home;
mod launch;
mod output;
mod protocol;
pub mod supervisor;
pub mod user;

use super::{Executor, FinalState, JobRequest, Outcome, Progress, TransientError};
use async_trait::async_trait;
pub use home::Homes;
use home::JobHome;
use launch::{StartError, next_status};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use protocol::Status;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::mpsc::UnboundedSender;
pub use user::ScriptUser;

/// Variables copied from the runner's environment when set; nothing else is.
pub const INHERITED_VARS: [&str; 2] = ["PATH", "LANG"];

/// Runs scripts on this machine.
#[derive(Debug, Clone)]
pub struct LocalExecutor {
    /// Time between SIGTERM and SIGKILL when a job is stopped.
    kill_grace: Duration,
    /// How long to keep reading output after the script ended: a background process that
    /// inherited the output pipe must not hold the job open.
    drain_limit: Duration,
    /// Bytes of output kept (the tail: the end of a log is what tells what happened).
    output_limit: usize,
    /// The `chatops-runner` binary whose `supervise` subcommand starts scripts; `None`: this
    /// process's own executable.
    supervisor: Option<PathBuf>,
    /// The user scripts run as; `None`: the runner's own.
    script_user: Option<ScriptUser>,
    /// Output is passed on as [`Progress::Output`] while the script runs (the live tail).
    live_output: bool,
    /// Where job homes are made; `None`: straight in the temp directory.
    homes: Option<Arc<Homes>>,
}

impl Default for LocalExecutor {
    fn default() -> Self {
        LocalExecutor {
            kill_grace: Duration::from_secs(5),
            drain_limit: Duration::from_secs(2),
            output_limit: 1024 * 1024,
            supervisor: None,
            script_user: None,
            live_output: false,
            homes: None,
        }
    }
}

impl LocalExecutor {
    /// Grace 5 s, drain 2 s, output kept: last 1 MiB; supervised by this executable; scripts
    /// run as the runner's user.
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_kill_grace(mut self, grace: Duration) -> Self {
        self.kill_grace = grace;
        self
    }

    pub fn with_drain_limit(mut self, limit: Duration) -> Self {
        self.drain_limit = limit;
        self
    }

    pub fn with_output_limit(mut self, bytes: usize) -> Self {
        self.output_limit = bytes.max(1);
        self
    }

    /// The `chatops-runner` binary to start scripts through (for tests, whose own executable
    /// is not `chatops-runner`).
    pub fn with_supervisor(mut self, binary: impl Into<PathBuf>) -> Self {
        self.supervisor = Some(binary.into());
        self
    }

    /// Passes output on as [`Progress::Output`] while the script runs (off by default).
    pub fn with_live_output(mut self, live: bool) -> Self {
        self.live_output = live;
        self
    }

    /// Job homes go in `homes` (the runner's own directory, swept when the runner was killed)
    /// instead of straight in the temp directory.
    pub fn with_homes(mut self, homes: Option<Arc<Homes>>) -> Self {
        self.homes = homes;
        self
    }

    /// Scripts run as this user (the runner must be root).
    pub fn with_script_user(mut self, user: Option<ScriptUser>) -> Self {
        self.script_user = user;
        self
    }
}

#[async_trait]
impl Executor for LocalExecutor {
    #[tracing::instrument(skip_all, fields(job_id = %request.job_id))]
    async fn run(
        &self,
        request: &JobRequest,
        progress: UnboundedSender<Progress>,
    ) -> Result<Outcome, TransientError> {
        let owner = self.script_user.as_ref().map(|u| (u.uid, u.gid));
        let parent = self
            .homes
            .as_ref()
            .map_or_else(std::env::temp_dir, |h| h.path().to_owned());
        let home = match JobHome::create(&parent, &request.job_id, owner) {
            Ok(home) => home,
            Err(e) => return Ok(not_started(request, &StartError::Home(e))),
        };
        let mut started = match self.start(request, home.path()).await {
            Ok(started) => started,
            Err(e) => return Ok(not_started(request, &e)),
        };
        // From here on, a dropped job (the runner's shutdown grace ran out) kills the group.
        let mut group = GroupGuard {
            pgid: started.pgid,
            armed: true,
        };
        let started_at = OffsetDateTime::now_utc();
        tracing::info!(pid = started.pgid.as_raw(), "script started");
        let _ = progress.send(Progress::Running {
            started_at,
            pgid: Some(started.pgid.as_raw()),
        });
        if self.live_output {
            started.output.stream_to(progress.clone());
        }

        // The supervisor stops the script at its timeout; this bound only guards against a
        // supervisor that stopped answering.
        let patience = request.timeout + self.kill_grace + Duration::from_secs(10);
        let mut stop = request.stop.clone();
        let mut stopped_on_request = false;
        let pgid = started.pgid;
        let wait = async {
            let status = next_status(&mut started.status);
            tokio::pin!(status);
            tokio::select! {
                // A script that ended as the stop came is reported as it ended, not stopped.
                biased;
                ended = &mut status => ended,
                () = stop.requested() => {
                    tracing::info!("stop asked for: stopping the script's process group");
                    stopped_on_request = true;
                    signal_group(pgid, Signal::SIGTERM);
                    let grace_over = tokio::time::Instant::now() + self.kill_grace;
                    let ended = match tokio::time::timeout_at(grace_over, &mut status).await {
                        Ok(ended) => ended,
                        Err(_) => {
                            signal_group(pgid, Signal::SIGKILL);
                            status.await
                        }
                    };
                    // The script may end at once while others of its group ignore SIGTERM:
                    // they get what is left of the grace, then SIGKILL.
                    while group_alive(pgid) && tokio::time::Instant::now() < grace_over {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    if group_alive(pgid) {
                        signal_group(pgid, Signal::SIGKILL);
                    }
                    ended
                }
            }
        };
        let ended = match tokio::time::timeout(patience, wait).await {
            Ok(Some(Status::Ended {
                code,
                signal,
                timed_out,
            })) => Ended::Exited {
                code,
                signal,
                timed_out,
            },
            Ok(other) => Ended::Lost(format!("the supervisor ended without a status ({other:?})")),
            Err(_) => Ended::Lost("the supervisor stopped answering".into()),
        };
        if matches!(ended, Ended::Lost(_)) {
            signal_group(started.pgid, Signal::SIGKILL);
        }
        let _ = progress.send(Progress::Ended);
        // It exits by itself after its last status; it is ours to reap.
        started.guard.disarm();
        if tokio::time::timeout(Duration::from_secs(2), started.supervisor.wait())
            .await
            .is_err()
        {
            let _ = started.supervisor.start_kill();
            let _ = started.supervisor.wait().await;
        }

        let mut output = started.output;
        if !output.finish_within(self.drain_limit).await {
            // Something still holds the output pipe after the script ended: a background
            // process it left behind. The job is over; so is its process group.
            signal_group(started.pgid, Signal::SIGKILL);
            output.note(
                "[output closed: a process the script left running kept it open; it was killed]",
            );
        }
        group.armed = false;
        let output = output.into_text();
        home.remove().await;

        let ended_at = OffsetDateTime::now_utc();
        let (state, error) = match ended {
            Ended::Exited {
                timed_out: true, ..
            } => (
                FinalState::TimedOut,
                Some(format!(
                    "timed out after {}; the script and its children were stopped",
                    humantime::format_duration(request.timeout)
                )),
            ),
            Ended::Exited { .. } if stopped_on_request => (
                FinalState::Stopped,
                Some("stopped on request; the script and its children were stopped".into()),
            ),
            Ended::Exited { code, signal, .. } => exit_state(code, signal),
            Ended::Lost(e) => {
                tracing::error!(error = %e, "lost track of the script");
                (
                    FinalState::Failed,
                    Some(format!("lost track of the script: {e}")),
                )
            }
        };
        tracing::info!(state = state.label(), "script ended");
        Ok(Outcome {
            state,
            output,
            error,
            started_at: Some(started_at),
            ended_at,
            stopped_by: None,
        })
    }
}

/// The outcome of a job whose script could not be started: the details go to the log, the
/// channel gets a plain reason and where to look.
fn not_started(request: &JobRequest, error: &StartError) -> Outcome {
    tracing::warn!(error = %error, "script could not be started");
    Outcome::without_run(FinalState::Failed, not_started_message(&request.job_id))
}

fn not_started_message(job_id: &uuid::Uuid) -> String {
    format!(
        "the script could not be started; an operator can find the details in the runner's log under job {}",
        chatops_shared::job::short_id(job_id)
    )
}

/// How the wait for the script ended.
enum Ended {
    Exited {
        code: Option<i32>,
        signal: Option<i32>,
        timed_out: bool,
    },
    /// The supervisor died or stopped answering (should not happen).
    Lost(String),
}

/// Kills the process group if the job is abandoned midway (the runner's task was cancelled);
/// the supervisor is told to do the same by its [`launch::SupervisorGuard`].
struct GroupGuard {
    pgid: Pid,
    armed: bool,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed {
            signal_group(self.pgid, Signal::SIGKILL);
        }
    }
}

/// Signals a process group; used by the executor and the supervisor alike. The supervisor sets
/// up no log (its stderr is the script's output), so there the warning goes nowhere.
/// Whether any process is left in the group (zombies not yet reaped count).
pub(super) fn group_alive(pgid: Pid) -> bool {
    nix::sys::signal::killpg(pgid, None).is_ok()
}

pub(super) fn signal_group(pgid: Pid, signal: Signal) {
    // ESRCH (nothing left in the group) is the usual, fine answer.
    if let Err(e) = killpg(pgid, signal)
        && e != nix::errno::Errno::ESRCH
    {
        tracing::warn!(error = %e, signal = signal.as_str(), "could not signal the script's process group");
    }
}

fn exit_state(code: Option<i32>, signal: Option<i32>) -> (FinalState, Option<String>) {
    match (code, signal) {
        (Some(0), _) => (FinalState::Completed, None),
        (Some(code), _) => (
            FinalState::Failed,
            Some(format!("exited with status {code}")),
        ),
        (None, Some(signal)) => {
            let name = Signal::try_from(signal)
                .map(Signal::as_str)
                .unwrap_or("unknown");
            (
                FinalState::Failed,
                Some(format!("killed by signal {signal} ({name})")),
            )
        }
        (None, None) => (FinalState::Failed, Some("ended abnormally".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn param_names_become_variable_names() {
        assert_eq!(
            chatops_shared::catalog::param_env_var("max-count"),
            "CHATOPS_PARAM_MAX_COUNT"
        );
        assert_eq!(
            chatops_shared::catalog::param_env_var("env"),
            "CHATOPS_PARAM_ENV"
        );
    }

    #[test]
    fn exit_codes_and_signals_map_to_states() {
        assert_eq!(exit_state(Some(0), None), (FinalState::Completed, None));
        assert_eq!(
            exit_state(Some(3), None),
            (FinalState::Failed, Some("exited with status 3".into()))
        );
        assert_eq!(
            exit_state(None, Some(9)),
            (
                FinalState::Failed,
                Some("killed by signal 9 (SIGKILL)".into())
            )
        );
    }
}
