//! What the scenarios beyond the queue path share: one Azurite with the Slack and ARM test
//! servers (a [`TestApp`]), a catalog of the runbooks they send, a fresh queue per scenario,
//! the ingress and runner binaries started on it, and how goals are printed.

use crate::ingress;
use chatops_e2e::app::TestApp;
use chatops_e2e::arm::Script;
use chatops_e2e::process::Service;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The Automation runbook every `dispatch n=…` command starts; it completes on its first poll.
pub const ARM_RUNBOOK: &str = "Bench-Dispatch";
/// The user group `grouped` is allowed through; [`ALICE`](chatops_e2e::app::ALICE) is in it.
pub const GROUP: &str = "SBENCH";

/// The scenarios' catalog: `dispatch` (Automation, for the runners and ARM), `grouped` (allowed
/// through a user group, so the acknowledgement asks Slack) and `form` (for `--form`).
const CATALOG: &str = r#"
[runbooks.dispatch]
description = "Starts an Automation job that completes at once"
executor = "automation"
target = "Bench-Dispatch"
params = [ { name = "n", required = true } ]
allow = { users = ["UALICE"] }

[runbooks.grouped]
description = "Allowed through a user group"
executor = "local"
target = "echo.sh"
params = [ { name = "n", required = true } ]
allow = { usergroups = ["SBENCH"] }

[runbooks.form]
description = "Asked for with --form"
executor = "local"
target = "echo.sh"
params = [ { name = "n", required = true } ]
allow = { users = ["UALICE"] }
"#;

/// The shared world of the scenarios.
pub struct Bench {
    pub app: TestApp,
    /// Where the service binaries are.
    pub bin: PathBuf,
    pub client: reqwest::Client,
    catalog: PathBuf,
    queues: usize,
}

impl Bench {
    pub async fn start(bin: &Path) -> anyhow::Result<Bench> {
        let app = TestApp::spawn().await;
        let catalog = app.dir.join("bench-runbooks.toml");
        std::fs::write(&catalog, CATALOG)?;
        app.arm
            .script(ARM_RUNBOOK, Script::completes("done").polls(0, 0));
        app.slack.set_usergroup(GROUP, &[chatops_e2e::app::ALICE]);
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(8)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Bench {
            app,
            bin: bin.to_owned(),
            client,
            catalog,
            queues: 0,
        })
    }

    /// A new, empty job queue for one scenario; its name.
    pub async fn fresh_queue(&mut self, scenario: &str) -> anyhow::Result<String> {
        self.queues += 1;
        let name = format!("bench-{scenario}-{}", self.queues);
        crate::raw::RawQueue::create(&self.app, &name, self.client.clone()).await?;
        Ok(name)
    }

    /// The services' environment on `queue` with the scenarios' catalog, ARM through the test
    /// server (managed identity), quick Automation polls, and an ARM read budget far above
    /// what these scenarios use (their ARM test server does not throttle: they measure the
    /// queue, the ingress and dispatch; ARM's read budget is the `follow` scenario's subject);
    /// then `extra` (which wins).
    pub fn env(&self, queue: &str, extra: &[(&str, String)]) -> Vec<(String, String)> {
        let mut env = self.app.service_env();
        env.extend(self.app.arm.env());
        let ours = [
            ("CHATOPS_QUEUE_NAME", queue.to_owned()),
            ("CHATOPS_CATALOG", self.catalog.display().to_string()),
            ("CHATOPS_AUTOMATION_POLL_INTERVAL", "100ms".to_owned()),
            ("CHATOPS_RUNNER_CONCURRENCY", "16".to_owned()),
            ("CHATOPS_ARM_READS_PER_SECOND", "1000".to_owned()),
        ];
        for (name, value) in ours.iter().chain(extra) {
            env.retain(|(n, _)| n != name);
            env.push(((*name).to_owned(), value.clone()));
        }
        env
    }

    /// The ingress binary with `env`, once `/readyz` answers; its address.
    pub async fn ingress(&self, env: &[(String, String)]) -> anyhow::Result<(Service, String)> {
        let (service, addr, _metrics) =
            ingress::start(&self.bin, &self.app, env, &self.client).await?;
        Ok((service, addr))
    }

    /// The runner binary with `env`, once `/readyz` answers.
    pub async fn runner(&self, env: &[(String, String)]) -> anyhow::Result<Service> {
        let service = Service::start_program(&self.bin.join("chatops-runner"), env, None);
        let addr = service.bound_addr().await;
        ready(&self.client, &addr, Duration::from_secs(10)).await?;
        Ok(service)
    }
}

/// Polls `http://addr/readyz` until it answers 200; how long that took.
pub async fn ready(
    client: &reqwest::Client,
    addr: &str,
    within: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let url = format!("http://{addr}/readyz");
    while started.elapsed() < within {
        let answer = client.get(&url).send().await;
        if answer.is_ok_and(|a| a.status().is_success()) {
            return Ok(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    anyhow::bail!("{url} did not answer ready within {within:?}")
}

/// A loopback port nothing listens on now (bound, then let go).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// A URL where a connection is refused: a backend that is down.
pub fn down_url() -> anyhow::Result<String> {
    Ok(format!("http://127.0.0.1:{}", free_port()?))
}

/// The machine's core count, printed with every figure.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, usize::from)
}

/// A goal line: what was measured, the goal, and whether it is met.
pub fn goal(what: &str, met: bool) -> String {
    format!("{what}: {}", if met { "met" } else { "NOT met" })
}

/// The value at quantile `q` of sorted milliseconds (nearest rank), 0 when empty.
pub fn quantile(sorted_ms: &[f64], q: f64) -> f64 {
    if sorted_ms.is_empty() {
        return 0.0;
    }
    let rank = ((sorted_ms.len() as f64) * q).ceil() as usize;
    sorted_ms[rank.clamp(1, sorted_ms.len()) - 1]
}

/// The goal lines of a scenario; a smoke run says its figures are not measurements.
pub fn print_goals(plan: &crate::Plan, goals: &[String]) {
    if plan.smoke {
        println!("smoke run: figures not checked against the goals");
    } else {
        for line in goals {
            println!("{line}");
        }
    }
}
