//! The service binaries as child processes, for the tests that must see the real thing:
//! configuration from the process environment, the managed-identity credential (which reads
//! `IDENTITY_ENDPOINT` itself), exit codes, signals, and what the logs contain.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Path of a workspace binary (`chatops-ingress`, `chatops-runner`), built on first use.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = std::process::Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "--locked",
                "--bins",
                "-p",
                "chatops-ingress",
                "-p",
                "chatops-runner",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(
            status.success(),
            "cargo build of the service binaries failed"
        );
    });
    // This test executable is target/<profile>/deps/<name>-<hash>; binaries are in target/<profile>.
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    profile_dir.join(name)
}

/// Whether this test process runs as root (then the runner needs `CHATOPS_SCRIPT_USER`).
pub fn running_as_root() -> bool {
    effective_uid() == Some(0)
}

/// This process's effective uid: the owner of `/proc/self`.
pub fn effective_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// A user's uid and gid from `/etc/passwd`.
pub fn user_ids(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        match fields.as_slice() {
            [user, _, uid, gid, ..] if *user == name => {
                Some((uid.parse().ok()?, gid.parse().ok()?))
            }
            _ => None,
        }
    })
}

/// A running service binary whose output (stdout and stderr) is collected line by line, or
/// written to a file ([`Service::start_program_logging_to`]).
pub struct Service {
    child: Child,
    output: Output,
}

/// Where a service's output goes.
enum Output {
    /// Read line by line as it comes, by tasks of this process.
    Collected(Arc<Mutex<Vec<String>>>),
    /// Written to a file.
    File(PathBuf),
}

/// The command for `program` with exactly `env` (plus `PATH`), JSON logs at `info`.
fn command(program: &std::path::Path, env: &[(String, String)]) -> Command {
    let mut command = Command::new(program);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CHATOPS_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

impl Service {
    /// Starts `binary` with exactly `env` (plus `PATH`), JSON logs.
    pub fn start(name: &str, env: &[(String, String)]) -> Service {
        Service::start_program(&binary(name), env, None)
    }

    /// Starts `program` (a copy of a service binary) with exactly `env` (plus `PATH`), JSON
    /// logs, as user `as_user` (uid, gid) when given (the test process must be root).
    pub fn start_program(
        program: &std::path::Path,
        env: &[(String, String)],
        as_user: Option<(u32, u32)>,
    ) -> Service {
        let mut command = command(program, env);
        if let Some((uid, gid)) = as_user {
            command.uid(uid).gid(gid);
        }
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn service");
        let lines = Arc::new(Mutex::new(Vec::new()));
        if let Some(out) = child.stdout.take() {
            collect(BufReader::new(out), lines.clone());
        }
        if let Some(err) = child.stderr.take() {
            collect(BufReader::new(err), lines.clone());
        }
        Service {
            child,
            output: Output::Collected(lines),
        }
    }

    /// [`Service::start_program`] writing its output to the file `log` instead, as a container
    /// runtime would: nothing in this process reads it until asked ([`Service::output`]). For
    /// benchmarks, where collecting every log line would load the load generator.
    pub fn start_program_logging_to(
        program: &std::path::Path,
        env: &[(String, String)],
        log: &std::path::Path,
    ) -> std::io::Result<Service> {
        let file = std::fs::File::create(log)?;
        let child = command(program, env)
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()?;
        Ok(Service {
            child,
            output: Output::File(log.to_owned()),
        })
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Sends SIGKILL and waits for the process to be gone.
    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }

    /// Everything the process printed so far.
    pub fn output(&self) -> Vec<String> {
        match &self.output {
            Output::Collected(lines) => lines.lock().map(|l| l.clone()).unwrap_or_default(),
            Output::File(path) => std::fs::read_to_string(path)
                .map(|text| text.lines().map(str::to_owned).collect())
                .unwrap_or_default(),
        }
    }

    /// Waits for a printed line that satisfies `matches`; panics with the output on timeout.
    pub async fn wait_for_line(&self, matches: impl Fn(&str) -> bool, timeout: Duration) -> String {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(line) = self.output().into_iter().find(|l| matches(l)) {
                return line;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected line not printed; output:\n{}",
                self.output().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The address a service logged as bound (`"addr":"127.0.0.1:…"`).
    pub async fn bound_addr(&self) -> String {
        let line = self
            .wait_for_line(|l| l.contains("\"addr\":"), Duration::from_secs(30))
            .await;
        let value: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
        value["addr"].as_str().expect("addr field").to_owned()
    }

    /// Sends SIGTERM and waits for the exit code.
    pub async fn terminate(&mut self, within: Duration) -> Option<i32> {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let status = tokio::time::timeout(within, self.child.wait())
            .await
            .expect("service exits after SIGTERM in time")
            .expect("wait for service");
        status.code()
    }

    /// Waits for the process to exit by itself.
    pub async fn exit_code(&mut self, within: Duration) -> Option<i32> {
        let status = tokio::time::timeout(within, self.child.wait())
            .await
            .expect("service exits in time")
            .expect("wait for service");
        // Let the readers take the last lines.
        tokio::time::sleep(Duration::from_millis(100)).await;
        status.code()
    }
}

fn collect<R: tokio::io::AsyncRead + Unpin + Send + 'static>(
    reader: BufReader<R>,
    lines: Arc<Mutex<Vec<String>>>,
) {
    tokio::spawn(async move {
        let mut reader = reader.lines();
        while let Ok(Some(line)) = reader.next_line().await {
            if let Ok(mut l) = lines.lock() {
                l.push(line);
            }
        }
    });
}
