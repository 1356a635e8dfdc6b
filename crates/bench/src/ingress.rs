//! The ingress as a process (the release or dev binary next to this one), sent distinct signed
//! slash commands: every request has its own text, so its own signature and job id, and each
//! must be acknowledged in the channel and reach the queue.

use chatops_e2e::app::{ALICE, OPS, SIGNING_SECRET, TestApp};
use chatops_e2e::process::Service;
use std::path::PathBuf;
use std::time::Duration;

/// What a load worker needs to send commands.
#[derive(Clone)]
pub struct Commands {
    client: reqwest::Client,
    url: String,
    response_url: String,
}

impl Commands {
    pub fn new(addr: &str, app: &TestApp, client: reqwest::Client) -> Self {
        Commands {
            client,
            url: format!("http://{addr}/slack/commands"),
            response_url: app.slack.response_url(),
        }
    }

    /// Sends command `n` (`/runbook echo b<n>`, signed now); true when it was acknowledged as
    /// queued.
    pub async fn send(&self, n: usize) -> bool {
        self.post(&format!("echo b{n}"), "1.2.3")
            .await
            .is_some_and(|answer| answer["response_type"] == "in_channel")
    }

    /// Sends `/runbook <text>` from Alice in #ops with `trigger_id`, signed now; the JSON
    /// answer, or `None` when there was no 200 answer.
    pub async fn post(&self, text: &str, trigger_id: &str) -> Option<serde_json::Value> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("token", "unused"),
                ("team_id", "T0TEST"),
                ("team_domain", "test"),
                ("channel_id", OPS),
                ("channel_name", "ops"),
                ("user_id", ALICE),
                ("user_name", "alice"),
                ("command", "/runbook"),
                ("text", text),
                ("response_url", self.response_url.as_str()),
                ("trigger_id", trigger_id),
                ("api_app_id", "A0TEST"),
            ])
            .finish();
        let ts = time::OffsetDateTime::now_utc().unix_timestamp();
        let signature = chatops_ingress::slack::verify::sign(SIGNING_SECRET, ts, body.as_bytes());
        let response = self
            .client
            .post(&self.url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", ts.to_string())
            .header("x-slack-signature", signature)
            .body(body)
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.json().await.ok()
    }
}

/// Builds the service binaries in this binary's profile (a no-op when they are up to date) and
/// returns the directory they are in.
pub fn build_binaries() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = std::process::Command::new(cargo);
    command.args([
        "build",
        "--quiet",
        "--locked",
        "--bins",
        "-p",
        "chatops-ingress",
        "-p",
        "chatops-runner",
    ]);
    if !cfg!(debug_assertions) {
        command.arg("--release");
    }
    let status = command.status()?;
    anyhow::ensure!(
        status.success(),
        "cargo build of the service binaries failed"
    );
    let exe = std::env::current_exe()?;
    exe.parent()
        .map(PathBuf::from)
        .ok_or_else(|| anyhow::anyhow!("no directory for {}", exe.display()))
}

/// Starts `chatops-ingress` from `dir` on the app's queue (with `extra_env`); returns it, its
/// address and its metrics address once `/readyz` answers.
pub async fn start(
    dir: &std::path::Path,
    app: &TestApp,
    extra_env: &[(String, String)],
    client: &reqwest::Client,
) -> anyhow::Result<(Service, String, String)> {
    // Free ports chosen here rather than the ones the ingress logs it bound: those log lines
    // are not there when `--ingress-env RUST_LOG=warn` prices logging.
    let addr = free_port()?;
    let metrics = free_port()?;
    let mut env = app.service_env();
    env.retain(|(name, _)| !extra_env.iter().any(|(extra, _)| extra == name));
    env.extend(extra_env.iter().cloned());
    env.retain(|(name, _)| name != "CHATOPS_INGRESS_ADDR" && name != "CHATOPS_METRICS_ADDR");
    env.push(("CHATOPS_INGRESS_ADDR".to_owned(), addr.clone()));
    env.push(("CHATOPS_METRICS_ADDR".to_owned(), metrics.clone()));
    // Its log lines (one per command) go to a file, as a container runtime would take them,
    // not through this process, which is the load generator. One file per ingress: some
    // scenarios run two at once on one app.
    let port = addr.rsplit(':').next().unwrap_or_default();
    let log = app.dir.join(format!("ingress-{port}.log"));
    let service = Service::start_program_logging_to(&dir.join("chatops-ingress"), &env, &log)?;
    for _ in 0..100 {
        let ready = client.get(format!("http://{addr}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            return Ok((service, addr, metrics));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("the ingress was not ready within 5 s")
}

/// A loopback address with a port free now (the ingress binds it next).
fn free_port() -> anyhow::Result<String> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .to_string())
}
