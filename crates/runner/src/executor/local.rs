//! Runs a runbook as a local script: the embedded default and the demo's executor.
//!
//! The script is executed directly, never through a shell: its arguments are the parameter
//! values in catalog order, so nothing a user typed is ever parsed as shell syntax. It gets a
//! cleared environment (only `PATH`, `HOME`, `LANG`, `CHATOPS_JOB_ID` and one
//! `CHATOPS_PARAM_<NAME>` per parameter), so the runner's secrets never reach it. It runs in a
//! process group of its own, so that a timeout stops everything it started.

use super::{Executor, FinalState, JobRequest, Outcome, Progress, TransientError};
use async_trait::async_trait;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::io::ErrorKind;
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::io::AsyncReadExt as _;
use tokio::net::unix::pipe;
use tokio::process::{Child, Command};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

/// Variables copied from the runner's environment when set; nothing else is.
const INHERITED_VARS: [&str; 3] = ["PATH", "HOME", "LANG"];

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
}

impl Default for LocalExecutor {
    fn default() -> Self {
        LocalExecutor {
            kill_grace: Duration::from_secs(5),
            drain_limit: Duration::from_secs(2),
            output_limit: 1024 * 1024,
        }
    }
}

impl LocalExecutor {
    /// Grace 5 s, drain 2 s, output kept: last 1 MiB.
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

        // stdout and stderr share one pipe, so the output keeps the order the script wrote it.
        let (reader, writer) = std::io::pipe()
            .map_err(|e| TransientError(format!("could not create the output pipe: {e}")))?;
        let writer_for_stderr = writer
            .try_clone()
            .map_err(|e| TransientError(format!("could not create the output pipe: {e}")))?;
        let receiver = pipe::Receiver::from_owned_fd(OwnedFd::from(reader))
            .map_err(|e| TransientError(format!("could not read the output pipe: {e}")))?;

        let program = program_path(&request.target);
        let spawned = {
            let mut command = command(&program, request);
            command
                .stdout(Stdio::from(writer))
                .stderr(Stdio::from(writer_for_stderr));
            spawn(&mut command).await
            // `command` is dropped here, closing our copies of the pipe's write end: the
            // reader sees end-of-file once the script and its children are done with it.
        };
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                tracing::warn!(error = %e, "script could not be started");
                return Ok(Outcome::without_run(
                    FinalState::Failed,
                    spawn_error_message(&program, &e),
                ));
            }
        };
        let Some(pgid) = child.id().map(|id| Pid::from_raw(id.cast_signed())) else {
            return Err(TransientError(
                "the script exited before it could be watched".into(),
            ));
        };
        let mut group = GroupGuard { pgid, armed: true };
        let started_at = OffsetDateTime::now_utc();
        tracing::info!(pid = pgid.as_raw(), "script started");
        let _ = progress.send(Progress::Running { started_at });

        let mut output = OutputPump::start(receiver, self.output_limit);
        let ended = match tokio::time::timeout(request.timeout, child.wait()).await {
            Ok(Ok(status)) => Ended::Exited(status),
            Ok(Err(e)) => Ended::Lost(e.to_string()),
            Err(_) => {
                tracing::warn!(timeout = ?request.timeout, "script timed out; stopping its process group");
                self.stop_group(&mut child, &mut output, pgid).await;
                Ended::TimedOut
            }
        };
        if !output.finish_within(self.drain_limit).await {
            // Something still holds the output pipe after the script ended: a background
            // process it left behind. The job is over; so is its process group.
            signal_group(pgid, Signal::SIGKILL);
            output.note(
                "[output closed: a process the script left running kept it open; it was killed]",
            );
        }
        group.armed = false;
        let output = output.into_text();

        let ended_at = OffsetDateTime::now_utc();
        let (state, error) = match ended {
            Ended::Exited(status) => exit_state(status),
            Ended::Lost(e) => (
                FinalState::Failed,
                Some(format!("lost track of the script: {e}")),
            ),
            Ended::TimedOut => (
                FinalState::TimedOut,
                Some(format!(
                    "timed out after {}; the script and its children were stopped",
                    humantime::format_duration(request.timeout)
                )),
            ),
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
    /// SIGTERM to the group; after the grace period (or as soon as the script and everything
    /// holding its output are gone), SIGKILL to whatever is left.
    async fn stop_group(&self, child: &mut Child, output: &mut OutputPump, pgid: Pid) {
        signal_group(pgid, Signal::SIGTERM);
        let graceful = tokio::time::timeout(self.kill_grace, async {
            let _ = child.wait().await;
            output.finish().await;
        })
        .await;
        if graceful.is_err() {
            tracing::warn!("script ignored SIGTERM; sending SIGKILL");
        }
        signal_group(pgid, Signal::SIGKILL);
        // SIGKILL cannot be ignored; the bound only guards against a kernel-level hang.
        let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    }
}

/// How the wait for the script ended.
enum Ended {
    Exited(ExitStatus),
    TimedOut,
    /// Waiting for the process failed (should not happen).
    Lost(String),
}

/// Kills the process group if the job is abandoned midway (the runner's task was cancelled).
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

fn command(program: &Path, request: &JobRequest) -> Command {
    // Absolute first: a relative program path is ambiguous once the working directory changes.
    let program = std::path::absolute(program).unwrap_or_else(|_| program.to_path_buf());
    let mut command = Command::new(&program);
    // Scripts run in their own directory, so that files beside them are found by plain names.
    if let Some(dir) = program.parent() {
        command.current_dir(dir);
    }
    command
        .args(request.params.iter().map(|(_, value)| value))
        .env_clear()
        .stdin(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    for var in INHERITED_VARS {
        if let Some(value) = std::env::var_os(var) {
            command.env(var, value);
        }
    }
    command.env("CHATOPS_JOB_ID", request.job_id.to_string());
    for (name, value) in &request.params {
        command.env(chatops_shared::catalog::param_env_var(name), value);
    }
    command
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

fn spawn_error_message(program: &Path, e: &std::io::Error) -> String {
    let path = program.display();
    match (e.kind(), e.raw_os_error()) {
        (ErrorKind::NotFound, _) => format!(
            "could not start {path}: no such file (or its #! interpreter is missing) — check the catalog's script path"
        ),
        (ErrorKind::PermissionDenied, _) => {
            format!("could not start {path}: permission denied — is it executable (chmod +x)?")
        }
        (_, Some(nix::libc::ENOEXEC)) => {
            format!("could not start {path}: exec format error — does it start with a #! line?")
        }
        _ => format!("could not start {path}: {e}"),
    }
}

fn exit_state(status: ExitStatus) -> (FinalState, Option<String>) {
    match (status.code(), status.signal()) {
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
        (None, None) => (
            FinalState::Failed,
            Some(format!("ended abnormally ({status})")),
        ),
    }
}

/// Reads the output pipe in the background into a bounded tail.
struct OutputPump {
    tail: Arc<Mutex<Tail>>,
    task: Option<JoinHandle<()>>,
}

impl OutputPump {
    fn start(mut receiver: pipe::Receiver, limit: usize) -> Self {
        let tail = Arc::new(Mutex::new(Tail::new(limit)));
        let sink = Arc::clone(&tail);
        let task = tokio::spawn(async move {
            let mut chunk = vec![0u8; 16 * 1024];
            loop {
                match receiver.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(&chunk[..n]),
                }
            }
        });
        OutputPump {
            tail,
            task: Some(task),
        }
    }

    /// Waits for end-of-file. Cancel-safe: a cancelled wait can be resumed.
    async fn finish(&mut self) {
        if let Some(task) = self.task.as_mut() {
            let _ = task.await;
            self.task = None;
        }
    }

    /// Waits for end-of-file at most `limit`; false when the pipe is still open.
    async fn finish_within(&mut self, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.finish()).await.is_ok()
    }

    fn note(&self, line: &str) {
        let mut tail = self.tail.lock().unwrap_or_else(PoisonError::into_inner);
        if !tail.ends_with_newline() {
            tail.push(b"\n");
        }
        tail.push(line.as_bytes());
        tail.push(b"\n");
    }

    fn into_text(mut self) -> String {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.tail
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .text()
    }
}

/// The last `limit` bytes of a stream, and how much there was.
struct Tail {
    bytes: Vec<u8>,
    total: usize,
    limit: usize,
}

impl Tail {
    fn new(limit: usize) -> Self {
        Tail {
            bytes: Vec::new(),
            total: 0,
            limit,
        }
    }

    fn push(&mut self, chunk: &[u8]) {
        self.total += chunk.len();
        self.bytes.extend_from_slice(chunk);
        // Trim in batches so a chatty script does not cost a copy per read.
        if self.bytes.len() > self.limit.saturating_mul(2) {
            let excess = self.bytes.len() - self.limit;
            self.bytes.drain(..excess);
        }
    }

    fn ends_with_newline(&self) -> bool {
        self.bytes.last().is_none_or(|b| *b == b'\n')
    }

    fn text(&self) -> String {
        let start = self.bytes.len().saturating_sub(self.limit);
        let mut kept = &self.bytes[start..];
        if start == 0 && self.total <= self.limit {
            return String::from_utf8_lossy(kept).into_owned();
        }
        // Do not start in the middle of a UTF-8 character.
        while let Some((first, rest)) = kept.split_first()
            && first & 0b1100_0000 == 0b1000_0000
        {
            kept = rest;
        }
        format!(
            "[output truncated: last {} of {} bytes kept]\n{}",
            kept.len(),
            self.total,
            String::from_utf8_lossy(kept)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::os::unix::fs::PermissionsExt as _;
    use std::time::Instant;
    use tokio::sync::mpsc::unbounded_channel;
    use uuid::Uuid;

    /// A directory under the system temp dir, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new() -> Self {
            let dir = std::env::temp_dir().join(format!("chatops-local-test-{}", Uuid::new_v4()));
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }

        fn script(&self, name: &str, body: &str, mode: u32) -> String {
            let path = self.0.join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            path.to_string_lossy().into_owned()
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn request(target: &str, params: &[(&str, &str)], timeout: Duration) -> JobRequest {
        JobRequest {
            job_id: Uuid::new_v4(),
            target: target.to_owned(),
            params: params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            timeout,
            redelivered: false,
        }
    }

    async fn run(executor: &LocalExecutor, request: &JobRequest) -> (Outcome, Vec<Progress>) {
        let (tx, mut rx) = unbounded_channel();
        let outcome = executor.run(request, tx).await.unwrap();
        let mut progress = Vec::new();
        while let Ok(p) = rx.try_recv() {
            progress.push(p);
        }
        (outcome, progress)
    }

    fn fast() -> LocalExecutor {
        LocalExecutor::new()
            .with_kill_grace(Duration::from_millis(500))
            .with_drain_limit(Duration::from_millis(500))
    }

    /// True when the process is gone or a zombie (its parent was killed; init reaps it).
    fn is_dead(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        }
    }

    async fn wait_dead(pid: i32) -> bool {
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if is_dead(pid) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    fn pid_after(output: &str, marker: &str) -> i32 {
        output
            .lines()
            .find_map(|l| l.strip_prefix(marker))
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no `{marker}` line in {output:?}"))
    }

    #[tokio::test]
    async fn passes_params_as_argv_and_a_cleared_environment() {
        let dir = Scratch::new();
        let script = dir.script(
            "show.sh",
            r#"for a in "$@"; do echo "arg=$a"; done; echo ---; env"#,
            0o755,
        );
        let tricky = "a b; $(touch pwned) `id` | & > x";
        let req = request(
            &script,
            &[("env", "prod"), ("max-count", tricky), ("empty", "")],
            Duration::from_secs(10),
        );
        let (outcome, progress) = run(&fast(), &req).await;
        assert_eq!(outcome.state, FinalState::Completed, "{outcome:?}");
        assert_eq!(outcome.error, None);
        assert!(matches!(progress.as_slice(), [Progress::Running { .. }]));
        assert!(!dir.0.join("pwned").exists());

        let (args, env) = outcome.output.split_once("---\n").unwrap();
        assert_eq!(args, format!("arg=prod\narg={tricky}\narg=\n"));
        let vars: BTreeSet<&str> = env
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, _)| k)
            .collect();
        let mut expected: BTreeSet<&str> = [
            "CHATOPS_JOB_ID",
            "CHATOPS_PARAM_ENV",
            "CHATOPS_PARAM_MAX_COUNT",
            "CHATOPS_PARAM_EMPTY",
        ]
        .into();
        for var in INHERITED_VARS {
            if std::env::var_os(var).is_some() {
                expected.insert(var);
            }
        }
        // The shell itself may export these.
        let shell_added = ["PWD", "OLDPWD", "SHLVL", "_"];
        let extra: Vec<_> = vars
            .difference(&expected)
            .filter(|v| !shell_added.contains(v))
            .collect();
        assert!(
            extra.is_empty(),
            "unexpected variables reached the script: {extra:?}"
        );
        assert!(expected.is_subset(&vars), "{vars:?}");
        assert!(env.contains(&format!("CHATOPS_JOB_ID={}\n", req.job_id)));
        assert!(env.contains(&format!("CHATOPS_PARAM_MAX_COUNT={tricky}\n")));
        assert!(env.contains("CHATOPS_PARAM_ENV=prod\n"));
    }

    #[tokio::test]
    async fn merges_stderr_and_maps_exit_codes() {
        let dir = Scratch::new();
        let script = dir.script(
            "fail.sh",
            "echo out1; echo err1 >&2; echo out2; exit 3",
            0o755,
        );
        let (outcome, _) = run(&fast(), &request(&script, &[], Duration::from_secs(10))).await;
        assert_eq!(outcome.state, FinalState::Failed);
        assert_eq!(outcome.error.as_deref(), Some("exited with status 3"));
        assert_eq!(outcome.output, "out1\nerr1\nout2\n");
        assert!(outcome.started_at.is_some());
    }

    #[tokio::test]
    async fn reports_death_by_signal() {
        let dir = Scratch::new();
        let script = dir.script("die.sh", "echo bye; kill -9 $$", 0o755);
        let (outcome, _) = run(&fast(), &request(&script, &[], Duration::from_secs(10))).await;
        assert_eq!(outcome.state, FinalState::Failed);
        assert_eq!(
            outcome.error.as_deref(),
            Some("killed by signal 9 (SIGKILL)")
        );
        assert_eq!(outcome.output, "bye\n");
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_process_group_quickly() {
        let dir = Scratch::new();
        let script = dir.script(
            "hang.sh",
            "echo before; sleep 30 & echo \"grandchild $!\"; wait",
            0o755,
        );
        let started = Instant::now();
        let (outcome, _) = run(&fast(), &request(&script, &[], Duration::from_millis(300))).await;
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(outcome.state, FinalState::TimedOut, "{outcome:?}");
        assert!(outcome.output.starts_with("before\n"), "{}", outcome.output);
        assert!(
            outcome
                .error
                .as_deref()
                .unwrap_or_default()
                .starts_with("timed out after 300ms")
        );
        assert!(wait_dead(pid_after(&outcome.output, "grandchild ")).await);
    }

    #[tokio::test]
    async fn timeout_escalates_to_sigkill_when_sigterm_is_ignored() {
        let dir = Scratch::new();
        let script = dir.script(
            "stubborn.sh",
            "trap '' TERM; sleep 30 & echo \"grandchild $!\"; wait; wait; wait",
            0o755,
        );
        let started = Instant::now();
        let (outcome, _) = run(&fast(), &request(&script, &[], Duration::from_millis(200))).await;
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(outcome.state, FinalState::TimedOut);
        assert!(wait_dead(pid_after(&outcome.output, "grandchild ")).await);
    }

    #[tokio::test]
    async fn a_background_process_holding_the_output_cannot_hang_the_job() {
        let dir = Scratch::new();
        let script = dir.script(
            "daemon.sh",
            "sleep 30 & echo \"grandchild $!\"; echo done",
            0o755,
        );
        let started = Instant::now();
        let (outcome, _) = run(&fast(), &request(&script, &[], Duration::from_secs(20))).await;
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(outcome.state, FinalState::Completed);
        assert!(
            outcome.output.contains("done\n[output closed:"),
            "{}",
            outcome.output
        );
        assert!(wait_dead(pid_after(&outcome.output, "grandchild ")).await);
    }

    #[tokio::test]
    async fn missing_script_fails_with_a_clear_message() {
        let dir = Scratch::new();
        let missing = dir.0.join("nope.sh").to_string_lossy().into_owned();
        let (outcome, progress) =
            run(&fast(), &request(&missing, &[], Duration::from_secs(5))).await;
        assert_eq!(outcome.state, FinalState::Failed);
        assert!(progress.is_empty());
        assert_eq!(outcome.started_at, None);
        let error = outcome.error.unwrap_or_default();
        assert!(
            error.starts_with(&format!("could not start {missing}: no such file")),
            "{error}"
        );
    }

    #[tokio::test]
    async fn non_executable_script_fails_with_a_hint() {
        let dir = Scratch::new();
        let script = dir.script("plain.sh", "echo hi", 0o644);
        let (outcome, _) = run(&fast(), &request(&script, &[], Duration::from_secs(5))).await;
        assert_eq!(outcome.state, FinalState::Failed);
        assert_eq!(
            outcome.error.as_deref(),
            Some(
                format!(
                    "could not start {script}: permission denied — is it executable (chmod +x)?"
                )
                .as_str()
            )
        );
    }

    #[tokio::test]
    async fn redelivered_jobs_are_not_run_again() {
        let dir = Scratch::new();
        let marker = dir.0.join("ran");
        let script = dir.script("once.sh", &format!("touch '{}'", marker.display()), 0o755);
        let mut req = request(&script, &[], Duration::from_secs(5));
        req.redelivered = true;
        let (outcome, progress) = run(&fast(), &req).await;
        assert_eq!(outcome.state, FinalState::Failed);
        assert!(
            outcome
                .error
                .unwrap_or_default()
                .starts_with("interrupted: a runner marked this job as started")
        );
        assert!(progress.is_empty());
        assert!(!marker.exists());
    }

    #[tokio::test]
    async fn keeps_the_tail_of_long_output() {
        let dir = Scratch::new();
        let script = dir.script(
            "chatty.sh",
            "i=0; while [ $i -lt 100 ]; do echo \"line $i\"; i=$((i+1)); done",
            0o755,
        );
        let executor = fast().with_output_limit(64);
        let (outcome, _) = run(&executor, &request(&script, &[], Duration::from_secs(10))).await;
        assert_eq!(outcome.state, FinalState::Completed);
        assert!(
            outcome
                .output
                .starts_with("[output truncated: last 64 of 790 bytes kept]\n"),
            "{}",
            outcome.output
        );
        assert!(outcome.output.ends_with("line 98\nline 99\n"));
    }

    #[test]
    fn tail_does_not_split_characters() {
        let mut tail = Tail::new(4);
        tail.push("aé€".as_bytes()); // 1 + 2 + 3 bytes; the last 4 start inside `é`
        assert_eq!(tail.text(), "[output truncated: last 3 of 6 bytes kept]\n€");
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
    fn bare_names_are_paths_not_path_lookups() {
        assert_eq!(program_path("deploy.sh"), PathBuf::from("./deploy.sh"));
        assert_eq!(
            program_path("/srv/r/deploy.sh"),
            PathBuf::from("/srv/r/deploy.sh")
        );
        assert_eq!(program_path("r/deploy.sh"), PathBuf::from("r/deploy.sh"));
    }
}
