//! The local executor with its real supervisor (`chatops-runner supervise`, built by cargo for
//! these tests): arguments, environment, output, exit codes, timeouts, process groups.

// Test code: a failed step should stop the test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chatops_runner::executor::local::{INHERITED_VARS, LocalExecutor};
use chatops_runner::executor::{Executor, FinalState, JobRequest, Outcome, Progress, StopSignal};
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::time::Duration;
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
        secret: Vec::new(),
        timeout,
        redelivered: false,
        stop: StopSignal::never(),
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
        .with_supervisor(env!("CARGO_BIN_EXE_chatops-runner"))
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
    // Started, then ended (before the outcome, its output read to the end).
    assert!(
        matches!(
            progress.as_slice(),
            [Progress::Running { .. }, Progress::Ended]
        ),
        "{progress:?}"
    );
    assert!(!dir.0.join("pwned").exists());

    let (args, env) = outcome.output.split_once("---\n").unwrap();
    assert_eq!(args, format!("arg=prod\narg={tricky}\narg=\n"));
    let vars: BTreeSet<&str> = env
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, _)| k)
        .collect();
    let mut expected: BTreeSet<&str> = [
        "HOME",
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

/// The channel gets a plain reason and the job id; the path and the OS error go to the log.
fn assert_plain_start_failure(outcome: &Outcome, req: &JobRequest, script: &str) {
    assert_eq!(outcome.state, FinalState::Failed);
    assert_eq!(outcome.started_at, None);
    let error = outcome.error.clone().unwrap_or_default();
    assert_eq!(
        error,
        format!(
            "the script could not be started; an operator can find the details in the runner's log under job {}",
            chatops_shared::job::short_id(&req.job_id)
        )
    );
    assert!(!error.contains(script), "no path in the channel: {error}");
}

#[tokio::test]
async fn missing_script_fails_with_a_plain_message() {
    let dir = Scratch::new();
    let missing = dir.0.join("nope.sh").to_string_lossy().into_owned();
    let req = request(&missing, &[], Duration::from_secs(5));
    let (outcome, progress) = run(&fast(), &req).await;
    assert!(progress.is_empty());
    assert_plain_start_failure(&outcome, &req, &missing);
}

#[tokio::test]
async fn non_executable_script_fails_with_a_plain_message() {
    let dir = Scratch::new();
    let script = dir.script("plain.sh", "echo hi", 0o644);
    let req = request(&script, &[], Duration::from_secs(5));
    let (outcome, progress) = run(&fast(), &req).await;
    assert!(progress.is_empty());
    assert_plain_start_failure(&outcome, &req, &script);
}

#[tokio::test]
async fn a_missing_supervisor_fails_with_the_same_plain_message() {
    let dir = Scratch::new();
    let script = dir.script("fine.sh", "echo hi", 0o755);
    let req = request(&script, &[], Duration::from_secs(5));
    let executor = fast().with_supervisor(dir.0.join("no-such-runner"));
    let (outcome, _) = run(&executor, &req).await;
    assert_plain_start_failure(&outcome, &req, &script);
}

/// Runs `script` (30 s timeout), asks to stop it after half a second, and waits (at most 10 s)
/// for its outcome and progress.
async fn stopped_after_half_a_second(script: &str) -> (Outcome, Vec<Progress>) {
    let (stop, signal) = StopSignal::new();
    let mut req = request(script, &[], Duration::from_secs(30));
    req.stop = signal;
    let executor = fast();
    let running = tokio::spawn(async move { run(&executor, &req).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.stop();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("ends soon after the stop")
        .unwrap()
}

#[tokio::test]
async fn a_stop_request_stops_the_script_and_its_children_and_ends_stopped() {
    let dir = Scratch::new();
    let marker = dir.0.join("finished");
    let child = dir.0.join("child-finished");
    let script = dir.script(
        "long.sh",
        &format!(
            "(sleep 3; touch '{}') &\necho started\nsleep 3\ntouch '{}'",
            child.display(),
            marker.display()
        ),
        0o755,
    );
    let (outcome, progress) = stopped_after_half_a_second(&script).await;
    assert_eq!(outcome.state, FinalState::Stopped, "{outcome:?}");
    assert!(outcome.output.contains("started"), "{outcome:?}");
    assert!(
        matches!(
            progress.as_slice(),
            [Progress::Running { .. }, Progress::Ended]
        ),
        "it had started: {progress:?}"
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!marker.exists(), "the script was stopped");
    assert!(!child.exists(), "its background child too");
}

#[tokio::test]
async fn a_stop_request_also_kills_what_in_the_group_ignores_sigterm() {
    let dir = Scratch::new();
    let child = dir.0.join("child-finished");
    // The child ignores SIGTERM and lets go of the output pipe; the script ends at SIGTERM.
    let script = dir.script(
        "stubborn.sh",
        &format!(
            "(trap '' TERM; sleep 2; touch '{}') >/dev/null 2>&1 &\necho started\nsleep 30",
            child.display()
        ),
        0o755,
    );
    let (outcome, _) = stopped_after_half_a_second(&script).await;
    assert_eq!(outcome.state, FinalState::Stopped, "{outcome:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!child.exists(), "the child that ignored SIGTERM was killed");
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

/// The test process is root in CI: scripts then run as `nobody`, as a root runner's would.
fn as_script_user() -> (LocalExecutor, u32) {
    let root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if root {
        let nobody = chatops_runner::executor::local::ScriptUser {
            name: "nobody".into(),
            uid: 65534,
            gid: 65534,
        };
        (fast().with_script_user(Some(nobody)), 65534)
    } else {
        let uid = std::fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
            .unwrap();
        (fast(), uid)
    }
}

#[tokio::test]
async fn home_is_a_fresh_empty_directory_of_the_script_user_removed_afterwards() {
    let dir = Scratch::new();
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = dir.script(
        "home.sh",
        r#"echo "home=$HOME"; echo "entries=$(ls -A "$HOME" | wc -l)"; stat -c 'owner=%u mode=%a' "$HOME"; echo "uid=$(id -u)"; touch "$HOME/left-behind" && echo wrote"#,
        0o755,
    );
    let (executor, uid) = as_script_user();
    let (outcome, _) = run(&executor, &request(&script, &[], Duration::from_secs(10))).await;
    assert_eq!(outcome.state, FinalState::Completed, "{outcome:?}");
    let home = outcome
        .output
        .lines()
        .find_map(|l| l.strip_prefix("home="))
        .unwrap()
        .to_owned();
    assert_ne!(Some(home.as_str()), std::env::var("HOME").ok().as_deref());
    assert!(outcome.output.contains("entries=0\n"), "{}", outcome.output);
    assert!(
        outcome
            .output
            .contains(&format!("owner={uid} mode=700\nuid={uid}\nwrote\n")),
        "{}",
        outcome.output
    );
    assert!(!PathBuf::from(&home).exists(), "{home} was not removed");
}

#[tokio::test]
async fn the_scripts_parent_shows_it_no_environment() {
    let dir = Scratch::new();
    let script = dir.script(
        "parent.sh",
        r#"tr '\0' '\n' < /proc/$PPID/environ; echo "[end]""#,
        0o755,
    );
    let (outcome, _) = run(&fast(), &request(&script, &[], Duration::from_secs(10))).await;
    assert_eq!(outcome.output, "[end]\n", "{outcome:?}");
}

#[tokio::test]
async fn a_dropped_job_kills_its_script_group() {
    let dir = Scratch::new();
    let pids = dir.0.join("pids");
    let script = dir.script(
        "forever.sh",
        &format!(
            "sleep 60 & echo $! > '{p}.tmp'; echo $$ >> '{p}.tmp'; mv '{p}.tmp' '{p}'; wait",
            p = pids.display()
        ),
        0o755,
    );
    let executor = fast();
    let req = request(&script, &[], Duration::from_secs(60));
    let (tx, _rx) = unbounded_channel();
    let mut run = Box::pin(executor.run(&req, tx));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pids.exists() {
        assert!(Instant::now() < deadline, "the script did not start");
        tokio::select! {
            _ = &mut run => panic!("the job ended by itself"),
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
    drop(run);
    for pid in std::fs::read_to_string(&pids).unwrap().lines() {
        assert!(wait_dead(pid.parse().unwrap()).await, "{pid} still runs");
    }
}
