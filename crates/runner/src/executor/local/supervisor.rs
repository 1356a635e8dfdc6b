//! `chatops-runner supervise`: the small process between the runner and a script, so that a
//! script dies with its runner.
//!
//! Started by the runner with an empty environment (so `/proc/$PPID/environ` shows a script
//! nothing), it makes itself non-dumpable, reads the `Spec` on stdin, asks the kernel for
//! SIGTERM when its parent dies (then checks the parent is still the runner), and starts the
//! script in a process group of its own, as the script user, with stdout and stderr both on
//! the supervisor's stderr (the runner's output pipe). It stops the whole group at the
//! timeout (SIGTERM, then SIGKILL after the grace) and kills it at once when the runner dies.
//! Its stdout carries the `Status` lines; it writes nothing else to stderr than one line
//! starting with `FATAL_PREFIX` when it cannot do its job.

use super::protocol::{FATAL_PREFIX, Spec, Status};
use super::{group_alive, signal_group};
use nix::sys::prctl;
use nix::sys::signal::Signal;
use nix::unistd::{Pid, getppid};
use std::io::{Read as _, Write as _};
use std::os::fd::AsFd as _;
use std::os::unix::process::ExitStatusExt as _;
use std::process::{ExitCode, ExitStatus, Stdio};
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::signal::unix::{SignalKind, signal};

/// Why the supervisor could not do its job; written as its one fatal line.
#[derive(Debug, thiserror::Error)]
enum SuperviseError {
    #[error("could not make itself non-dumpable: {0}")]
    Dumpable(nix::Error),
    #[error("could not read the job spec on stdin: {0}")]
    ReadSpec(std::io::Error),
    #[error("the job spec is not valid: {0}")]
    Spec(serde_json::Error),
    #[error("could not watch for its parent's death: {0}")]
    ParentWatch(String),
    #[error("the runner (pid {0}) died before the script started; not starting it")]
    RunnerGone(i32),
    #[error("could not share its output pipe with the script: {0}")]
    Output(std::io::Error),
}

/// Runs the subcommand; the exit code is 0 when the script's end was reported.
pub async fn main() -> ExitCode {
    match supervise().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{FATAL_PREFIX} {e}");
            ExitCode::from(70)
        }
    }
}

async fn supervise() -> Result<(), SuperviseError> {
    prctl::set_dumpable(false).map_err(SuperviseError::Dumpable)?;
    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .map_err(SuperviseError::ReadSpec)?;
    let spec: Spec = serde_json::from_slice(&input).map_err(SuperviseError::Spec)?;

    // The handler first: SIGTERM's default action would kill us and leave the script running.
    let mut parent_died =
        signal(SignalKind::terminate()).map_err(|e| SuperviseError::ParentWatch(e.to_string()))?;
    prctl::set_pdeathsig(Signal::SIGTERM)
        .map_err(|e| SuperviseError::ParentWatch(e.to_string()))?;
    // The runner may have died before the request above: we would never get the signal.
    if getppid().as_raw() != spec.runner_pid {
        return Err(SuperviseError::RunnerGone(spec.runner_pid));
    }

    let mut command = command(&spec)?;
    let mut child = match spawn(&mut command).await {
        Ok(child) => child,
        Err(e) => {
            report(&Status::SpawnFailed {
                errno: e.raw_os_error(),
                message: e.to_string(),
            });
            return Ok(());
        }
    };
    drop(command);
    let Some(pid) = child.id().map(|id| id.cast_signed()) else {
        // Already reaped: cannot happen before we wait, but answer rather than hang.
        report(&Status::Ended {
            code: None,
            signal: None,
            timed_out: false,
        });
        return Ok(());
    };
    let pgid = Pid::from_raw(pid);
    report(&Status::Started { pid });

    let timeout = Duration::from_millis(spec.timeout_ms);
    let grace = Duration::from_millis(spec.kill_grace_ms);
    let (status, timed_out) = tokio::select! {
        status = child.wait() => (status.ok(), false),
        () = tokio::time::sleep(timeout) => (stop(&mut child, pgid, grace, &mut parent_died).await, true),
        _ = parent_died.recv() => {
            // The runner is gone (or asked us to stop): nobody will read the output.
            signal_group(pgid, Signal::SIGKILL);
            (child.wait().await.ok(), false)
        }
    };
    report(&ended(status, timed_out));
    Ok(())
}

/// The script's command: no shell, the spec's environment only, its own process group.
fn command(spec: &Spec) -> Result<Command, SuperviseError> {
    // stdout and stderr are one pipe (ours), so the output keeps the order it was written in.
    let output = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map_err(SuperviseError::Output)?;
    let output_for_stderr = output.try_clone().map_err(SuperviseError::Output)?;
    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::from(output))
        .stderr(Stdio::from(output_for_stderr))
        .process_group(0);
    if let Some(gid) = spec.gid {
        command.gid(gid);
    }
    if let Some(uid) = spec.uid {
        // std also drops the supplementary groups when switching from root.
        command.uid(uid);
    }
    Ok(command)
}

/// Spawns, retrying briefly on ETXTBSY: a script written just now may still be open for
/// writing in a process forked meanwhile by another thread.
async fn spawn(command: &mut Command) -> std::io::Result<Child> {
    let mut tries = 0;
    loop {
        match command.spawn() {
            Err(e) if e.raw_os_error() == Some(nix::libc::ETXTBSY) && tries < 5 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(20 * tries)).await;
            }
            other => return other,
        }
    }
}

/// SIGTERM to the group; after the grace (or as soon as the group is empty), SIGKILL to
/// whatever is left. The runner dying meanwhile cuts the grace short.
async fn stop(
    child: &mut Child,
    pgid: Pid,
    grace: Duration,
    parent_died: &mut tokio::signal::unix::Signal,
) -> Option<ExitStatus> {
    signal_group(pgid, Signal::SIGTERM);
    let gone = async {
        let status = child.wait().await.ok();
        while group_alive(pgid) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        status
    };
    let graceful = tokio::select! {
        status = tokio::time::timeout(grace, gone) => status.ok(),
        _ = parent_died.recv() => None,
    };
    signal_group(pgid, Signal::SIGKILL);
    match graceful {
        Some(status) => status,
        None => child.wait().await.ok(),
    }
}

fn ended(status: Option<ExitStatus>, timed_out: bool) -> Status {
    Status::Ended {
        code: status.and_then(|s| s.code()),
        signal: status.and_then(|s| s.signal()),
        timed_out,
    }
}

/// One status line on stdout. A runner that is gone cannot read it; nothing to do then.
fn report(status: &Status) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(status.line().as_bytes());
    let _ = out.flush();
}
