//! What a local script can reach, with the real `chatops-runner` binary: the runner's secrets
//! (not through `/proc` of its parent or of the runner, in both safe modes), its life (a
//! runner killed with SIGKILL takes its script's process group along), its `HOME` (fresh,
//! empty, the script user's, removed afterwards), and the start rules for a root runner
//! (`CHATOPS_SCRIPT_USER`). Also: the runner's shutdown does not wait for a stuck health check.
//!
//! The modes that need a user switch need root; as another user they print that they were
//! skipped.

// Test code: a failed step should stop the test with its message.
#![allow(clippy::expect_used)]

use chatops_e2e::app::{ALICE, TestApp};
use chatops_e2e::process::{Service, binary, running_as_root, user_ids};
use chatops_shared::queue::connection::DEVSTORE_KEY;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A directory of scripts and their catalog, removed on drop.
struct Scripts(PathBuf);

impl Scripts {
    /// `scripts` as (runbook name, shell body); each runbook runs `<name>.sh`. The directory
    /// gets `mode`; the scripts 0755, the catalog 0644.
    fn new(scripts: &[(&str, &str)], mode: u32) -> Scripts {
        let dir = std::env::temp_dir().join(format!(
            "chatops-isolation-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("scripts dir");
        let mut catalog = String::new();
        for (name, body) in scripts {
            let path = dir.join(format!("{name}.sh"));
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .expect("chmod script");
            catalog.push_str(&format!(
                "[runbooks.{name}]\ndescription = \"{name}\"\nexecutor = \"local\"\ntarget = \"{name}.sh\"\ntimeout = \"5m\"\nallow = {{ users = [\"{ALICE}\"] }}\n\n"
            ));
        }
        let catalog_path = dir.join("runbooks.toml");
        std::fs::write(&catalog_path, catalog).expect("write catalog");
        std::fs::set_permissions(&catalog_path, std::fs::Permissions::from_mode(0o644))
            .expect("chmod catalog");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).expect("chmod dir");
        Scripts(dir)
    }

    fn catalog(&self) -> String {
        self.0.join("runbooks.toml").display().to_string()
    }
}

impl Drop for Scripts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A copy of the runner binary in a 0755 directory, so that any user can run it (`target/`
/// may not be reachable by `nobody`).
struct RunnerCopy(PathBuf);

impl RunnerCopy {
    fn new() -> RunnerCopy {
        let dir = std::env::temp_dir().join(format!(
            "chatops-runner-copy-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("copy dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let path = dir.join("chatops-runner");
        std::fs::copy(binary("chatops-runner"), &path).expect("copy the runner");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        RunnerCopy(path)
    }
}

impl Drop for RunnerCopy {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The runner's environment for `scripts`, with every secret the issue names set.
fn runner_env(app: &TestApp, scripts: &Scripts, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = app
        .service_env()
        .into_iter()
        .filter(|(k, _)| k != "CHATOPS_CATALOG" && !extra.iter().any(|(e, _)| e == k))
        .collect();
    env.push(("CHATOPS_CATALOG".into(), scripts.catalog()));
    env.push(("SLACK_WEBHOOK_URL".into(), app.slack.webhook_url()));
    env.push(("IDENTITY_HEADER".into(), IDENTITY_HEADER.into()));
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    env
}

const IDENTITY_HEADER: &str = "identity-header-secret-4c1f9e";

/// Puts a signed job for `runbook` on the queue, as the ingress would; returns its short id.
async fn enqueue(app: &TestApp, runbook: &str) -> String {
    let job = app.run_message(runbook, &[]);
    app.put_raw(&app.queue_text(&job)).await;
    job.short_id()
}

async fn started(runner: &Service) {
    runner
        .wait_for_line(
            |l| l.contains("chatops-runner started"),
            Duration::from_secs(30),
        )
        .await;
}

fn nobody() -> (u32, u32) {
    user_ids("nobody").expect("a `nobody` user in /etc/passwd")
}

fn skipped(test: &str) {
    println!("SKIPPED {test}: needs root (runs the runner or its scripts as `nobody`)");
}

/// The pids of the live (not zombie) processes in process group `pgid`.
fn group_members(pgid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // Fields after the command: state, ppid, pgrp, ...
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest.split_whitespace().collect())
                .unwrap_or_default();
            matches!(fields.as_slice(), [state, _, pgrp, ..]
                if !matches!(*state, "Z" | "X") && pgrp.parse() == Ok(pgid))
        })
        .collect()
}

#[tokio::test]
async fn a_script_dies_with_its_runner_killed_by_sigkill() {
    let app = TestApp::spawn().await;
    let scripts = Scripts::new(&[("forever", "")], 0o755);
    let pids = scripts.0.join("pids");
    std::fs::write(
        scripts.0.join("forever.sh"),
        format!(
            "#!/bin/sh\nsleep 600 &\necho \"$$ $!\" > '{p}.tmp'; mv '{p}.tmp' '{p}'\nwait\n",
            p = pids.display()
        ),
    )
    .expect("write script");
    // Root scripts may write the pid file anywhere; otherwise they run as this user.
    let env = runner_env(&app, &scripts, &[]);
    let mut runner = Service::start("chatops-runner", &env);
    started(&runner).await;
    enqueue(&app, "forever").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !pids.exists() {
        assert!(
            Instant::now() < deadline,
            "the script did not start:\n{}",
            runner.output().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = std::fs::read_to_string(&pids).expect("pids");
    let (script, child) = text.trim().split_once(' ').expect("two pids");
    let pgid: i32 = script.parse().expect("pid");
    let child: i32 = child.parse().expect("pid");
    assert!(
        group_members(pgid).contains(&child),
        "the child is in the script's group"
    );

    runner.kill().await;
    let killed = Instant::now();
    while !group_members(pgid).is_empty() {
        assert!(
            killed.elapsed() < Duration::from_secs(2),
            "the script's process group outlived its runner by 2 s: {:?}",
            group_members(pgid)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The job's message stays on the queue, marked started, for another runner to report.
    app.forget_queue();
}

/// Prints what the script can read of its parent's and of the runner's environment.
const SNOOP: &str = r#"echo "parent $PPID:"
tr '\0' '\n' < /proc/$PPID/environ 2>&1 || echo "parent unreadable"
runner=$(cut -d' ' -f4 /proc/$PPID/stat)
echo "runner $runner:"
tr '\0' '\n' < /proc/$runner/environ 2>&1 || echo "runner unreadable"
echo "uid $(id -u)"
echo "[end]""#;

/// Runs SNOOP through a runner started with `extra` (as `as_user` when given), checks the
/// script ran as `script_uid` and saw none of the runner's secrets.
async fn snoop(extra: &[(&str, &str)], as_user: Option<(u32, u32)>, script_uid: u32) {
    let app = TestApp::spawn().await;
    let scripts = Scripts::new(&[("snoop", SNOOP)], 0o755);
    let copy = RunnerCopy::new();
    let env = runner_env(&app, &scripts, extra);
    let mut runner = Service::start_program(&copy.0, &env, as_user);
    started(&runner).await;
    let id = enqueue(&app, "snoop").await;
    let text = app.final_text(&id, "*Completed*").await;
    assert!(text.contains("[end]"), "the script ran to its end: {text}");
    for secret in [
        DEVSTORE_KEY,
        "AZURE_STORAGE_CONNECTION_STRING",
        "SLACK_WEBHOOK_URL",
        &app.slack.webhook_url(),
        IDENTITY_HEADER,
        "CHATOPS_JOB_SIGNING_KEY",
    ] {
        assert!(
            !text.contains(secret),
            "the script read `{secret}`:\n{text}"
        );
    }
    assert!(text.contains(&format!("uid {script_uid}")), "{text}");
    assert_eq!(runner.terminate(Duration::from_secs(15)).await, Some(0));
    app.finish().await;
}

#[tokio::test]
async fn a_runner_that_is_not_root_keeps_its_secrets_from_its_scripts() {
    if !running_as_root() {
        // The runner already runs as a user that is not root: that is the mode itself.
        let uid = chatops_e2e::process::effective_uid().expect("uid");
        snoop(&[], None, uid).await;
        return;
    }
    // The runner itself runs as `nobody`; an empty value leaves CHATOPS_SCRIPT_USER unset
    // (`service_env` sets it to `root` for root runners).
    let nobody = nobody();
    snoop(&[("CHATOPS_SCRIPT_USER", "")], Some(nobody), nobody.0).await;
}

#[tokio::test]
async fn a_root_runner_keeps_its_secrets_from_scripts_run_as_the_script_user() {
    if !running_as_root() {
        return skipped("a_root_runner_keeps_its_secrets_from_scripts_run_as_the_script_user");
    }
    snoop(&[("CHATOPS_SCRIPT_USER", "nobody")], None, nobody().0).await;
}

/// Says which processes' environments held the job signing key, of all the script can read.
const SNOOP_ALL: &str = r#"for e in /proc/[0-9]*/environ; do
  if { tr '\0' '\n' < "$e"; } 2>/dev/null | grep -q '^CHATOPS_JOB_SIGNING_KEY='; then echo "read the key in $e"; fi
done
echo "uid $(id -u)"
echo "[end]""#;

/// Runs SNOOP_ALL through a runner started, as in a container, by an init that holds the same
/// environment (every secret) and stays its parent, as `tini` does; both as `as_user` when
/// given. Returns the script's output.
async fn snoop_under_an_init(extra: &[(&str, &str)], as_user: Option<(u32, u32)>) -> String {
    let app = TestApp::spawn().await;
    let scripts = Scripts::new(&[("snoop", SNOOP_ALL)], 0o755);
    let copy = RunnerCopy::new();
    let init = scripts.0.join("init.sh");
    std::fs::write(
        &init,
        format!(
            "#!/bin/sh\n\"{}\" &\nchild=$!\ntrap 'kill -TERM $child' TERM\nwait $child\nwait $child\n",
            copy.0.display()
        ),
    )
    .expect("write init");
    std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o755)).expect("chmod init");
    let env = runner_env(&app, &scripts, extra);
    let mut runner = Service::start_program(&init, &env, as_user);
    started(&runner).await;
    let id = enqueue(&app, "snoop").await;
    let text = app.final_text(&id, "*Completed*").await;
    assert!(text.contains("[end]"), "the script ran to its end: {text}");
    assert_eq!(runner.terminate(Duration::from_secs(15)).await, Some(0));
    app.finish().await;
    text
}

#[tokio::test]
async fn in_the_runner_images_mode_a_script_cannot_read_the_secrets_its_init_holds() {
    if !running_as_root() {
        return skipped(
            "in_the_runner_images_mode_a_script_cannot_read_the_secrets_its_init_holds",
        );
    }
    // The image: init and runner root, scripts run as the script user.
    let text = snoop_under_an_init(&[("CHATOPS_SCRIPT_USER", "nobody")], None).await;
    assert!(!text.contains("read the key"), "{text}");
    assert!(text.contains(&format!("uid {}", nobody().0)), "{text}");
    // Why: when init, runner and scripts share a user, the init's environment is open to the
    // scripts, though the runner hides its own (non-dumpable).
    let nobody = nobody();
    let text = snoop_under_an_init(&[("CHATOPS_SCRIPT_USER", "")], Some(nobody)).await;
    assert!(text.contains("read the key"), "{text}");
}

#[tokio::test]
async fn a_root_runner_must_be_told_who_runs_scripts() {
    if !running_as_root() {
        return skipped("a_root_runner_must_be_told_who_runs_scripts");
    }
    let app = TestApp::spawn().await;
    let scripts = Scripts::new(&[("hello", "echo hi")], 0o755);

    // Unset: refused, naming the variable.
    let env: Vec<_> = runner_env(&app, &scripts, &[])
        .into_iter()
        .filter(|(k, _)| k != "CHATOPS_SCRIPT_USER")
        .collect();
    let mut runner = Service::start("chatops-runner", &env);
    assert_eq!(runner.exit_code(Duration::from_secs(30)).await, Some(2));
    let said = runner.output().join("\n");
    assert!(said.contains("CHATOPS_SCRIPT_USER"), "{said}");
    assert!(said.contains("(hello)"), "names the local runbooks: {said}");

    // `root`: starts, with a warning.
    let env = runner_env(&app, &scripts, &[("CHATOPS_SCRIPT_USER", "root")]);
    let mut runner = Service::start("chatops-runner", &env);
    started(&runner).await;
    let said = runner.output().join("\n");
    assert!(
        said.contains("WARN") && said.contains("can read this runner's secrets"),
        "{said}"
    );
    assert_eq!(runner.terminate(Duration::from_secs(15)).await, Some(0));

    // A script the script user cannot reach is named at start.
    let hidden = Scripts::new(&[("hidden", "echo hi")], 0o700);
    let env = runner_env(&app, &hidden, &[("CHATOPS_SCRIPT_USER", "nobody")]);
    let mut runner = Service::start("chatops-runner", &env);
    assert_eq!(runner.exit_code(Duration::from_secs(30)).await, Some(2));
    let said = runner.output().join("\n");
    assert!(
        said.contains("user `nobody` cannot run these local scripts: hidden ("),
        "{said}"
    );
    assert!(said.contains("cannot enter directory"), "{said}");
    app.finish().await;
}

#[tokio::test]
async fn a_home_the_script_made_read_only_is_removed_by_a_runner_that_is_not_root() {
    let app = TestApp::spawn().await;
    let scripts = Scripts::new(
        &[(
            "readonly",
            r#"echo "home=$HOME"; mkdir -p "$HOME/cache/mod/x" && touch "$HOME/cache/mod/x/f" && chmod -R a-w "$HOME/cache" && echo locked"#,
        )],
        0o755,
    );
    // Not root: the runner itself as `nobody` (the mode where the runner cannot override the
    // script's permissions), else as the user running the tests.
    let (extra, as_user, copy) = if running_as_root() {
        (
            vec![("CHATOPS_SCRIPT_USER", "")],
            Some(nobody()),
            Some(RunnerCopy::new()),
        )
    } else {
        (vec![], None, None)
    };
    let env = runner_env(&app, &scripts, &extra);
    let mut runner = match &copy {
        Some(copy) => Service::start_program(&copy.0, &env, as_user),
        None => Service::start("chatops-runner", &env),
    };
    started(&runner).await;
    let id = enqueue(&app, "readonly").await;
    let text = app.final_text(&id, "*Completed*").await;
    assert!(text.contains("locked"), "{text}");
    let home = text
        .lines()
        .find_map(|l| l.strip_prefix("home="))
        .expect("home line")
        .to_owned();
    assert!(!Path::new(&home).exists(), "{home} was not removed");
    assert_eq!(runner.terminate(Duration::from_secs(15)).await, Some(0));
    app.finish().await;
}

#[tokio::test]
async fn a_runner_whose_binary_was_replaced_on_disk_still_runs_scripts() {
    let app = TestApp::spawn().await;
    let scripts = Scripts::new(&[("hello", "echo hi from the script")], 0o755);
    let copy = RunnerCopy::new();
    let env = runner_env(&app, &scripts, &[]);
    let mut runner = Service::start_program(&copy.0, &env, None);
    started(&runner).await;
    // An upgrade in place: another file renamed over the running binary's path.
    let other = copy.0.with_file_name("next-build");
    std::fs::write(&other, "#!/bin/sh\nexit 3\n").expect("write");
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::rename(&other, &copy.0).expect("rename over the binary");
    let id = enqueue(&app, "hello").await;
    let text = app.final_text(&id, "*Completed*").await;
    assert!(text.contains("hi from the script"), "{text}");
    assert_eq!(runner.terminate(Duration::from_secs(15)).await, Some(0));
    app.finish().await;
}

#[tokio::test]
async fn home_is_a_fresh_empty_directory_of_the_script_user_removed_afterwards() {
    let app = TestApp::spawn().await;
    let scripts = Scripts::new(
        &[(
            "home",
            r#"echo "home=$HOME"; echo "entries=$(ls -A "$HOME" | wc -l)"; stat -c 'owner=%u mode=%a' "$HOME"; touch "$HOME/left-behind" && echo wrote"#,
        )],
        0o755,
    );
    let (extra, uid) = if running_as_root() {
        (vec![("CHATOPS_SCRIPT_USER", "nobody")], nobody().0)
    } else {
        (vec![], chatops_e2e::process::effective_uid().expect("uid"))
    };
    let env = runner_env(&app, &scripts, &extra);
    let mut runner = Service::start("chatops-runner", &env);
    started(&runner).await;
    let id = enqueue(&app, "home").await;
    let text = app.final_text(&id, "*Completed*").await;
    assert!(text.contains("entries=0\n"), "{text}");
    assert!(
        text.contains(&format!("owner={uid} mode=700\nwrote")),
        "{text}"
    );
    let home = text
        .lines()
        .find_map(|l| l.strip_prefix("home="))
        .expect("home line")
        .to_owned();
    assert_ne!(Some(home.as_str()), std::env::var("HOME").ok().as_deref());
    assert!(!Path::new(&home).exists(), "{home} was not removed");
    assert_eq!(runner.terminate(Duration::from_secs(15)).await, Some(0));
    app.finish().await;
}

#[tokio::test]
async fn shutdown_does_not_wait_for_a_stuck_health_check() {
    use tokio::io::AsyncWriteExt as _;
    let app = TestApp::spawn().await;
    let mut runner = Service::start("chatops-runner", &app.service_env());
    let addr = runner.bound_addr().await;
    // A health check that never finishes sending its request.
    let mut stuck = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    stuck
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: runner\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let asked = Instant::now();
    assert_eq!(runner.terminate(Duration::from_secs(20)).await, Some(0));
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "the runner took {:?} to stop",
        asked.elapsed()
    );
    drop(stuck);
    app.finish().await;
}
