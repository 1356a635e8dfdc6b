//! Starting a script: the supervisor process (`chatops-runner supervise`) with an empty
//! environment, the job's [`Spec`] on its stdin, and its first status (started, or why not).

use super::output::OutputPump;
use super::protocol::{Spec, Status};
use super::{INHERITED_VARS, LocalExecutor};
use crate::executor::JobRequest;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::net::unix::pipe;
use tokio::process::{Child, ChildStdout, Command};

/// How long a supervisor may take to read its job and say whether the script started (a
/// stuck exec, e.g. on a hung network mount, must not hold the job forever). The guard then
/// stops it.
const START_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Why a script could not be started; logged, never shown in Slack.
#[derive(Debug, thiserror::Error)]
pub(super) enum StartError {
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
pub(super) struct Started {
    pub(super) supervisor: Child,
    pub(super) guard: SupervisorGuard,
    pub(super) status: Lines<BufReader<ChildStdout>>,
    pub(super) pgid: Pid,
    pub(super) output: OutputPump,
}

/// The supervisor's program: this very build. `/proc/self/exe` opens the image this process
/// runs even when its file was replaced since (an upgrade in place, a rebuild during a demo),
/// where `current_exe` names a path that then holds another build (whose supervisor may speak
/// another protocol) or nothing at all (`… (deleted)`, every local job refused).
fn own_image() -> Result<PathBuf, StartError> {
    let this = PathBuf::from("/proc/self/exe");
    if this.exists() {
        return Ok(this);
    }
    std::env::current_exe().map_err(StartError::SupervisorPath)
}

impl LocalExecutor {
    /// Starts the supervisor, gives it the job, and waits for the script to be started.
    pub(super) async fn start(
        &self,
        request: &JobRequest,
        home: &Path,
    ) -> Result<Started, StartError> {
        // The supervisor's stderr is the script's stdout and stderr: one pipe, so the output
        // keeps the order the script wrote it in.
        let (reader, writer) = std::io::pipe().map_err(StartError::Pipe)?;
        let receiver =
            pipe::Receiver::from_owned_fd(OwnedFd::from(reader)).map_err(StartError::Pipe)?;
        let path = match &self.supervisor {
            Some(path) => path.clone(),
            None => own_image()?,
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
            // Fails only for a path that is not UTF-8 (the script's or its directory's).
            let json = serde_json::to_vec(&spec)
                .map_err(|e| StartError::Spec(std::io::Error::other(e)))?;
            tokio::time::timeout(START_LIMIT, stdin.write_all(&json))
                .await
                .map_err(|_| StartError::SupervisorFailed("it did not read the job spec".into()))?
                .map_err(StartError::Spec)?;
            // Dropping it closes it: the supervisor reads to end-of-file.
        }
        let mut status = match supervisor.stdout.take() {
            Some(stdout) => BufReader::new(stdout).lines(),
            None => return Err(StartError::SupervisorFailed("no status pipe".into())),
        };
        let first = tokio::time::timeout(START_LIMIT, next_status(&mut status))
            .await
            .map_err(|_| {
                StartError::SupervisorFailed(format!(
                    "no word from it within {}s of its start",
                    START_LIMIT.as_secs()
                ))
            })?;
        match first {
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
            // A secret's place in argv is left empty: it is in the environment only.
            args: request
                .params
                .iter()
                .map(|(name, value)| {
                    if request.secret.contains(name) {
                        String::new()
                    } else {
                        value.clone()
                    }
                })
                .collect(),
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
pub(super) async fn next_status(lines: &mut Lines<BufReader<ChildStdout>>) -> Option<Status> {
    let line = lines.next_line().await.ok()??;
    serde_json::from_str(&line).ok()
}

/// Asks the supervisor to kill the script's group (SIGTERM, as if the runner had died) if the
/// job is abandoned midway, including before the runner learnt the group's id. Not SIGKILL:
/// a killed supervisor could not stop the script.
pub(super) struct SupervisorGuard(Option<Pid>);

impl SupervisorGuard {
    fn new(supervisor: &Child) -> Self {
        SupervisorGuard(supervisor.id().map(|id| Pid::from_raw(id.cast_signed())))
    }

    /// Before the supervisor is reaped, so that a reused pid is never signalled.
    pub(super) fn disarm(&mut self) {
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
    fn start_errors_tell_the_operator_what_to_check() {
        let e = StartError::Script {
            path: PathBuf::from("/srv/r/x.sh"),
            error: std::io::Error::from_raw_os_error(nix::libc::EACCES),
            hint: spawn_hint(&std::io::Error::from_raw_os_error(nix::libc::EACCES)),
        };
        assert_eq!(
            e.to_string(),
            "could not start /srv/r/x.sh: Permission denied (os error 13) — is it executable (chmod +x), and can the script user reach it?"
        );
    }
}
