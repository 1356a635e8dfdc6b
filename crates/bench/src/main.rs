//! `chatops-bench`: starts Azurite (real, on disk), the Slack and ARM test servers and the
//! ingress binary, then measures, in one run, raw Put Message to Azurite (the baseline), the
//! same through the services' queue code (the SDK) and through a do-nothing hop process
//! ([`hop`]), and the ingress (distinct signed slash commands) at each concurrency, three repeats
//! each, and prints the medians with their spread, the ratio to the baseline and which goals are
//! met.
//!
//! `cargo run --release -p chatops-bench` for the figures; `--smoke` for a few seconds that
//! only check that everything still works (every request answered, every message queued).
//! Then the follow-capacity scenario (`follow`): one runner process following 2,000
//! concurrent Automation jobs under ARM's read throttle (20 short ones in `--smoke`).
//! Options: `--requests N` per point and repeat (default 10000), `--repeats N` (3),
//! `--concurrency 4,32`, `--ingress-env NAME=VALUE` (repeatable: extra environment for the
//! ingress, e.g. `RUST_LOG=warn` to see what logging costs), `--only NAME,…` (scenarios to run:
//! `queue` (the above), `dispatch`, `idle`, `startup`, `degraded`, `follow`; all by default).
//!
//! The other scenarios, each in its own module, share one more Azurite with the test servers
//! (`services`): dispatch latency with 1 and 4 runners (`dispatch`), an idle runner's queue
//! requests and the first command after idling (`idle`), start-up to ready (`startup`), and
//! acknowledgements while Slack or ARM is slow or down (`degraded`).

mod cpu;
mod degraded;
mod dispatch;
mod follow;
mod hop;
mod idle;
mod ingress;
mod load;
mod proxy;
mod raw;
mod report;
mod scenarios;
mod services;
mod startup;
mod stats;

use chatops_e2e::app::TestApp;
use chatops_shared::queue::connection::DEVSTORE_ACCOUNT;
use stats::Run;
use std::process::ExitCode;
use std::time::Duration;

/// What to measure.
#[derive(Debug, Clone)]
pub struct Plan {
    pub requests: usize,
    pub repeats: usize,
    pub concurrency: Vec<usize>,
    pub smoke: bool,
    /// Extra environment for the ingress process.
    pub ingress_env: Vec<(String, String)>,
    /// `--only`: the scenarios to run (all when empty).
    pub only: Vec<String>,
    /// `--help`: print [`USAGE`] and stop.
    pub help: bool,
}

const USAGE: &str = "\
chatops-bench: measures the ingress against raw Put Message on a real Azurite, then the
runners (dispatch, idle, start-up, degraded dependencies, follow capacity); see docs/benchmarks.md.

  --smoke                 a few seconds that only check that everything still works
  --requests N            requests per point and repeat (default 10000)
  --repeats N             repeats per point (default 3)
  --concurrency A,B,...   connections per point (default 4,32)
  --ingress-env NAME=VAL  extra environment for the ingress (repeatable)
  --only NAME,...         scenarios: queue, dispatch, idle, startup, degraded, follow (default all)
  -h, --help              this text
";

/// The scenarios `--only` can name: the queue path, then the others (`scenarios`).
const SCENARIOS: [&str; 6] = ["queue", "dispatch", "idle", "startup", "degraded", "follow"];

impl Plan {
    fn from_args(args: impl Iterator<Item = String>) -> Result<Plan, String> {
        let mut plan = Plan {
            requests: 10_000,
            repeats: 3,
            concurrency: vec![4, 32],
            smoke: false,
            ingress_env: Vec::new(),
            only: Vec::new(),
            help: false,
        };
        let mut args = args.peekable();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
            match arg.as_str() {
                "--help" | "-h" => {
                    plan.help = true;
                    return Ok(plan);
                }
                "--smoke" => plan.smoke = true,
                "--requests" => plan.requests = number(&value("--requests")?)?,
                "--repeats" => plan.repeats = number(&value("--repeats")?)?,
                "--concurrency" => {
                    plan.concurrency = value("--concurrency")?
                        .split(',')
                        .map(number)
                        .collect::<Result<_, _>>()?;
                }
                "--ingress-env" => {
                    let pair = value("--ingress-env")?;
                    let (name, value) = pair
                        .split_once('=')
                        .ok_or(format!("`{pair}` is not NAME=VALUE"))?;
                    plan.ingress_env.push((name.to_owned(), value.to_owned()));
                }
                "--only" => {
                    for name in value("--only")?.split(',') {
                        if !SCENARIOS.contains(&name) {
                            return Err(format!(
                                "unknown scenario `{name}` (one of {})",
                                SCENARIOS.join(", ")
                            ));
                        }
                        plan.only.push(name.to_owned());
                    }
                }
                other => return Err(format!("unknown argument `{other}` (see --help)")),
            }
        }
        if plan.smoke {
            plan.requests = 300;
            plan.repeats = 1;
        }
        Ok(plan)
    }

    /// Whether scenario `name` is to run.
    pub fn runs(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|n| n == name)
    }
}

fn number(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("`{text}` is not a whole number of at least 1")),
    }
}

/// One concurrency's runs: baseline and ingress, one per repeat.
pub struct Point {
    pub concurrency: usize,
    pub raw: Vec<Run>,
    /// The same messages through `chatops_shared::queue` (the SDK), in this process.
    pub sdk: Vec<Run>,
    /// Raw Put Message through a pass-through process ([`hop`]): the floor of any ingress.
    pub hop: Vec<Run>,
    pub ingress: Vec<Run>,
}

fn main() -> ExitCode {
    // Measure the services as the images run them (`RUST_LIB_BACKTRACE=0`, see
    // `chatops_shared::telemetry::errors_capture_backtraces`): with `RUST_BACKTRACE=1` alone,
    // the Azure SDK walks the stack on every request, here and in every process started below.
    if chatops_shared::telemetry::errors_capture_backtraces(&chatops_shared::config::ProcessEnv) {
        use std::os::unix::process::CommandExt as _;
        if let Ok(exe) = std::env::current_exe() {
            let error = std::process::Command::new(exe)
                .args(std::env::args_os().skip(1))
                .env("RUST_LIB_BACKTRACE", "0")
                .exec();
            eprintln!("chatops-bench: cannot restart with RUST_LIB_BACKTRACE=0: {error}");
            return ExitCode::FAILURE;
        }
    }
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some(hop::ARG) {
        return serve_hop(args.nth(1).unwrap_or_default());
    }
    let plan = match Plan::from_args(args) {
        Ok(plan) if plan.help => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("chatops-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("chatops-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let queue = if plan.runs("queue") {
        match runtime.block_on(measure(&plan)) {
            Ok(points) => report::print(&plan, &points),
            Err(e) => {
                eprintln!("chatops-bench: {e:#}");
                ExitCode::FAILURE
            }
        }
    } else {
        ExitCode::SUCCESS
    };
    let others = match runtime.block_on(scenarios::run(&plan, &SCENARIOS[1..5])) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("chatops-bench: {e:#}");
            ExitCode::FAILURE
        }
    };
    let followed = if plan.runs("follow") {
        match runtime.block_on(async {
            let dir = ingress::build_binaries()?;
            follow::measure(&dir, follow::FollowPlan::new(plan.smoke)).await
        }) {
            Ok(result) if follow::print(&result) => ExitCode::SUCCESS,
            Ok(_) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("chatops-bench: follow capacity: {e:#}");
                ExitCode::FAILURE
            }
        }
    } else {
        ExitCode::SUCCESS
    };
    if queue != ExitCode::SUCCESS {
        queue
    } else if others != ExitCode::SUCCESS {
        others
    } else {
        followed
    }
}

async fn measure(plan: &Plan) -> anyhow::Result<Vec<Point>> {
    let dir = ingress::build_binaries()?;
    let app = TestApp::spawn().await;
    let max = plan.concurrency.iter().copied().max().unwrap_or(1);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(max)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(10))
        .build()?;
    let raw = raw::RawQueue::create(&app, "bench-raw", client.clone()).await?;
    let (mut service, addr, metrics_addr) =
        ingress::start(&dir, &app, &plan.ingress_env, &client).await?;
    eprintln!("ingress pid {:?} on {addr}", service.pid());
    let commands = ingress::Commands::new(&addr, &app, client.clone());
    // The ingress's queue, counted the same way.
    let jobs = raw::RawQueue::create(&app, &app.queue_name, client.clone()).await?;
    let sdk_counter = raw::RawQueue::create(&app, "bench-sdk", client.clone()).await?;
    let hop = hop::Hop::start(&app.azurite.queue_endpoint(), &plan.ingress_env).await?;
    let via_hop = raw::RawQueue::create_at(
        &format!("{}/{DEVSTORE_ACCOUNT}", hop.url()),
        "bench-hop",
        client.clone(),
    )
    .await?;
    let sdk = chatops_e2e::app::queue_for(
        &app.azurite,
        "bench-sdk",
        chatops_shared::queue::retry::RetryBudget::interactive(),
    );

    let mut next = 0;
    let mut points = Vec::new();
    for &concurrency in &plan.concurrency {
        // Warm both paths at this concurrency (connections, caches) before measuring.
        let warm = concurrency * 10;
        let r = raw.clone();
        load::run(concurrency, next, warm, move |n| {
            let r = r.clone();
            async move { r.put(n).await }
        })
        .await;
        let c = commands.clone();
        load::run(concurrency, next, warm, move |n| {
            let c = c.clone();
            async move { c.send(n).await }
        })
        .await;
        next += warm;
        let mut point = Point {
            concurrency,
            raw: Vec::new(),
            sdk: Vec::new(),
            hop: Vec::new(),
            ingress: Vec::new(),
        };
        for repeat in 1..=plan.repeats {
            eprintln!(
                "concurrency {concurrency}, repeat {repeat}/{}",
                plan.repeats
            );
            // Each repeat starts with another path, so that none always runs first or last.
            for path in (0..4).map(|i| (i + repeat) % 4) {
                match path {
                    // Raw Put Message, straight to Azurite or through the hop.
                    0 | 2 => {
                        let (queue, runs, server) = if path == 0 {
                            (&raw, &mut point.raw, None)
                        } else {
                            (&via_hop, &mut point.hop, hop.pid())
                        };
                        let q = queue.clone();
                        let load = (concurrency, next, plan.requests);
                        let run = measured(queue, server, load, move |n| {
                            let q = q.clone();
                            async move { q.put(n).await }
                        });
                        runs.push(run.await?);
                    }
                    1 => {
                        let q = sdk.clone();
                        let load = (concurrency, next, plan.requests);
                        let run = measured(&sdk_counter, None, load, move |n| {
                            let q = q.clone();
                            async move { q.send(&raw::message(n)).await.is_ok() }
                        });
                        point.sdk.push(run.await?);
                    }
                    _ => {
                        let c = commands.clone();
                        let load = (concurrency, next, plan.requests);
                        let run = measured(&jobs, service.pid(), load, move |n| {
                            let c = c.clone();
                            async move { c.send(n).await }
                        });
                        point.ingress.push(run.await?);
                    }
                }
                next += plan.requests;
            }
        }
        points.push(point);
    }
    // Where the ingress's time went, as its own metrics say (retries, storage answers).
    let text = client
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    eprintln!("ingress metrics after the run:");
    text.lines()
        .filter(|l| {
            l.starts_with("chatops_retries_total")
                || l.starts_with("chatops_storage_requests_total")
                || l.starts_with("chatops_commands_total")
                || l.starts_with("chatops_ack_seconds_count")
                || l.starts_with("chatops_ack_seconds_sum")
        })
        .for_each(|l| eprintln!("  {l}"));
    service.terminate(Duration::from_secs(10)).await;
    drop(hop);
    app.forget_queue();
    Ok(points)
}

/// `chatops-bench hop <upstream>`: see [`hop`].
/// The hop runs on the ingress's runtime (its size read as the ingress reads it), so that it
/// differs from the ingress only in what it does with a request.
fn serve_hop(upstream: String) -> ExitCode {
    let served = chatops_ingress::config::worker_threads(&chatops_shared::config::ProcessEnv)
        .map_err(anyhow::Error::from)
        .and_then(|threads| Ok(chatops_shared::runtime::build(Some(threads))?))
        .and_then(|runtime| runtime.block_on(hop::serve(&upstream)));
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chatops-bench hop: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one load, `(concurrency, first request number, requests)`, and counts what reached
/// `queue` meanwhile, and the CPU the process `server` used for it.
async fn measured<F, Fut>(
    queue: &raw::RawQueue,
    server: Option<u32>,
    (concurrency, first, total): (usize, usize, usize),
    send: F,
) -> anyhow::Result<Run>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    // Every run starts on an empty store (this queue is emptied before, and every queue after
    // its run): Azurite's Put Message slows down as messages pile up, which would favour
    // whichever path ran first.
    queue.clear().await?;
    let before = queue.len().await?;
    let cpu_before = server.and_then(cpu::used);
    let outcome = load::run(concurrency, first, total, send).await;
    let cpu_after = server.and_then(cpu::used);
    let after = queue.len().await?;
    queue.clear().await?;
    Ok(Run {
        ok: outcome.latencies.len() - outcome.errors,
        errors: outcome.errors,
        queued: after.saturating_sub(before),
        elapsed: outcome.elapsed,
        server_cpu: cpu::per_request(cpu_before, cpu_after, outcome.latencies.len()),
        latencies: outcome.latencies,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(args: &[&str]) -> Result<Plan, String> {
        Plan::from_args(args.iter().map(|a| (*a).to_owned()))
    }

    #[test]
    fn only_names_known_scenarios_and_all_run_without_it() {
        let all = plan(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert!(SCENARIOS.iter().all(|s| all.runs(s)));
        let some = plan(&["--only", "dispatch,idle"]).unwrap_or_else(|e| panic!("{e}"));
        assert!(some.runs("dispatch") && some.runs("idle"));
        assert!(!some.runs("queue") && !some.runs("degraded"));
        assert!(plan(&["--only", "everything"]).is_err());
    }
}
