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
//! - [`protocol`]: what the runner and the supervisor say to each other;
//! - [`output`]: the output pipe's bounded tail;
//! - [`home`]: the per-job `HOME`.

mod home;
pub mod output;
pub mod protocol;
pub mod supervisor;
pub mod user;

use super::{Executor, FinalState, JobRequest, Outcome, Progress, TransientError};
use async_trait::async_trait;
use home::JobHome;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use output::OutputPump;
use protocol::{Spec, Status};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::net::unix::pipe;
use tokio::process::{Child, ChildStdout, Command};
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
}

impl Default for LocalExecutor {
    fn default() -> Self {
        LocalExecutor {
            kill_grace: Duration::from_secs(5),
            drain_limit: Duration::from_secs(2),
            output_limit: 1024 * 1024,
            supervisor: None,
            script_user: None,
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

    /// Scripts run as this user (the runner must be root).
    pub fn with_script_user(mut self, user: Option<ScriptUser>) -> Self {
        self.script_user = user;
        self
    }
}

/// Why a script could not be started; logged, never shown in Slack.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error("could not create the output pipe: {0}")]
    Pipe(std::io::Error),
    #[error("could not create the script's HOME: {0}")]
    Home(std::io::Error),
    #[error("could not find the chatops-runner executable to supervise the script: {0}")]
    SupervisorPath(std::io::Error),
    #[error("could not start the supervisor {path}: {error}")]
    Supervisor {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("could not give the supervisor the job: {0}")]
    Spec(std::io::Error),
    #[error("could not start {path}: {error}{hint}")]
    Script {
        path: PathBuf,
        error: std::io::Error,
        hint: &'static str,
    },
    #[error("the supervisor gave up before starting the script: {0}")]
    SupervisorFailed(String),
}

/// A supervisor that started a script.
struct Started {
    supervisor: Child,
    guard: SupervisorGuard,
    status: Lines<BufReader<ChildStdout>>,
    pgid: Pid,
    output: OutputPump,
}

#[async_trait]
impl Executor for LocalExecutor {
    #[tracing::instrument(skip_all, fields(job_id = %request.job_id))]
    async fn run(
        &self,
        request: &JobRequest,
        progress: UnboundedSender<Progress>,
    ) -> Result<Outcome, TransientError> {
        if request.redelivered {
            // A script has no job id to look up: we cannot know whether it ran, and running a
            // runbook twice could do harm.
            return Ok(Outcome::without_run(
                FinalState::Failed,
                "interrupted: a runner marked this job as started and stopped before it \
                 reported the end, so the script may have run in part, in full or not at all; \
                 it was not run again",
            ));
        }
        let owner = self.script_user.as_ref().map(|u| (u.uid, u.gid));
        let home = match JobHome::create(&request.job_id, owner) {
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
        let _ = progress.send(Progress::Running { started_at });

        // The supervisor stops the script at its timeout; this bound only guards against a
        // supervisor that stopped answering.
        let patience = request.timeout + self.kill_grace + Duration::from_secs(10);
        let ended = match tokio::time::timeout(patience, next_status(&mut started.status)).await {
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
        drop(home);

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
        })
    }
}

impl LocalExecutor {
    /// Starts the supervisor, gives it the job, and waits for the script to be started.
    async fn start(&self, request: &JobRequest, home: &Path) -> Result<Started, StartError> {
        // The supervisor's stderr is the script's stdout and stderr: one pipe, so the output
        // keeps the order the script wrote it in.
        let (reader, writer) = std::io::pipe().map_err(StartError::Pipe)?;
        let receiver =
            pipe::Receiver::from_owned_fd(OwnedFd::from(reader)).map_err(StartError::Pipe)?;
        let path = match &self.supervisor {
            Some(path) => path.clone(),
            None => std::env::current_exe().map_err(StartError::SupervisorPath)?,
        };
        let mut command = Command::new(&path);
        command
            .arg("supervise")
            // Nothing of the runner's environment: a script reading its parent's sees nothing.
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(writer))
            // Out of the runner's group, so that a Ctrl-C meant for the runner does not kill
            // the supervisor before it stops the script.
            .process_group(0);
        // The supervisor asks for a signal when the *thread* that spawned it exits. This runs
        // on the calling task's thread: a tokio runtime worker (or the test's runtime thread),
        // which lives as long as the runtime, that is as long as the runner. Never spawn it
        // from `spawn_blocking`: those threads exit when idle and would kill the script early.
        let mut supervisor = command.spawn().map_err(|error| StartError::Supervisor {
            path: path.clone(),
            error,
        })?;
        // `command` holds our copy of the pipe's write end: drop it, so that the reader sees
        // end-of-file once the supervisor, the script and its children are done with it.
        drop(command);
        let mut guard = SupervisorGuard::new(&supervisor);
        let output = OutputPump::start(receiver, self.output_limit);

        let spec = self.spec(request, home);
        if let Some(mut stdin) = supervisor.stdin.take() {
            let json = serde_json::to_vec(&spec).unwrap_or_default();
            stdin.write_all(&json).await.map_err(StartError::Spec)?;
            // Dropping it closes it: the supervisor reads to end-of-file.
        }
        let mut status = match supervisor.stdout.take() {
            Some(stdout) => BufReader::new(stdout).lines(),
            None => return Err(StartError::SupervisorFailed("no status pipe".into())),
        };
        match next_status(&mut status).await {
            Some(Status::Started { pid }) => Ok(Started {
                supervisor,
                guard,
                status,
                pgid: Pid::from_raw(pid),
                output,
            }),
            Some(Status::SpawnFailed { errno, message }) => {
                let error = match errno {
                    Some(errno) => std::io::Error::from_raw_os_error(errno),
                    None => std::io::Error::other(message),
                };
                let hint = spawn_hint(&error);
                guard.disarm();
                let _ = supervisor.wait().await;
                Err(StartError::Script {
                    path: spec.program,
                    error,
                    hint,
                })
            }
            other => {
                guard.disarm();
                let _ = supervisor.start_kill();
                let _ = supervisor.wait().await;
                let mut output = output;
                let _ = output.finish_within(Duration::from_secs(1)).await;
                let said = output.into_text();
                Err(StartError::SupervisorFailed(format!(
                    "{other:?}; it said: {}",
                    said.trim()
                )))
            }
        }
    }

    fn spec(&self, request: &JobRequest, home: &Path) -> Spec {
        let program = program_path(&request.target);
        // Absolute: a relative program path is ambiguous once the working directory changes.
        let program = std::path::absolute(&program).unwrap_or(program);
        // Scripts run in their own directory, so that files beside them are found by plain names.
        let cwd = program
            .parent()
            .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
        let mut env: Vec<(String, String)> = INHERITED_VARS
            .iter()
            .filter_map(|var| std::env::var(var).ok().map(|v| ((*var).to_owned(), v)))
            .collect();
        env.push(("HOME".into(), home.display().to_string()));
        env.push(("CHATOPS_JOB_ID".into(), request.job_id.to_string()));
        for (name, value) in &request.params {
            env.push((chatops_shared::catalog::param_env_var(name), value.clone()));
        }
        Spec {
            program,
            args: request.params.iter().map(|(_, v)| v.clone()).collect(),
            env,
            cwd,
            timeout_ms: u64::try_from(request.timeout.as_millis()).unwrap_or(u64::MAX),
            kill_grace_ms: u64::try_from(self.kill_grace.as_millis()).unwrap_or(u64::MAX),
            uid: self.script_user.as_ref().map(|u| u.uid),
            gid: self.script_user.as_ref().map(|u| u.gid),
            runner_pid: std::process::id().cast_signed(),
        }
    }
}

/// The next status line; `None` when the supervisor closed its stdout or said nonsense.
async fn next_status(lines: &mut Lines<BufReader<ChildStdout>>) -> Option<Status> {
    let line = lines.next_line().await.ok()??;
    serde_json::from_str(&line).ok()
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

/// Asks the supervisor to kill the script's group (SIGTERM, as if the runner had died) if the
/// job is abandoned midway, including before the runner learnt the group's id. Not SIGKILL:
/// a killed supervisor could not stop the script.
struct SupervisorGuard(Option<Pid>);

impl SupervisorGuard {
    fn new(supervisor: &Child) -> Self {
        SupervisorGuard(supervisor.id().map(|id| Pid::from_raw(id.cast_signed())))
    }

    /// Before the supervisor is reaped, so that a reused pid is never signalled.
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for SupervisorGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = nix::sys::signal::kill(pid, Signal::SIGTERM);
        }
    }
}

/// Kills the process group if the job is abandoned midway (the runner's task was cancelled);
/// the supervisor itself is killed on drop.
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

fn signal_group(pgid: Pid, signal: Signal) {
    // ESRCH (nothing left in the group) is the usual, fine answer.
    if let Err(e) = killpg(pgid, signal)
        && e != nix::errno::Errno::ESRCH
    {
        tracing::warn!(error = %e, signal = signal.as_str(), "could not signal the script's process group");
    }
}

/// A bare file name would be looked up in `PATH`; the target is a path, so make it one.
fn program_path(target: &str) -> PathBuf {
    let path = Path::new(target);
    if target.contains('/') {
        path.to_path_buf()
    } else {
        Path::new(".").join(path)
    }
}

/// What the operator reading the log should check.
fn spawn_hint(e: &std::io::Error) -> &'static str {
    match (e.kind(), e.raw_os_error()) {
        (std::io::ErrorKind::NotFound, _) => {
            " (or its #! interpreter is missing) — check the catalog's script path"
        }
        (std::io::ErrorKind::PermissionDenied, _) => {
            " — is it executable (chmod +x), and can the script user reach it?"
        }
        (_, Some(nix::libc::ENOEXEC)) => " — does it start with a #! line?",
        _ => "",
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
    fn bare_names_are_paths_not_path_lookups() {
        assert_eq!(program_path("deploy.sh"), PathBuf::from("./deploy.sh"));
        assert_eq!(
            program_path("/srv/r/deploy.sh"),
            PathBuf::from("/srv/r/deploy.sh")
        );
        assert_eq!(program_path("r/deploy.sh"), PathBuf::from("r/deploy.sh"));
    }

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
