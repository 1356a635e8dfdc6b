//! Follow capacity: one `chatops-runner` process following many concurrent Azure Automation
//! jobs (2,000; possible in Azure only across hybrid worker groups) against the ARM double with
//! wall-time job durations and ARM's subscription read throttle (a 250-read bucket refilled at
//! 25/s), the runner's read budget being the whole subscription's
//! (`CHATOPS_ARM_READS_PER_SECOND=25`, one replica).
//!
//! Reported: whether every job was reported `Completed`, ARM reads and how many were answered
//! 429 (goal: no storm, under 1% of reads), the runner's peak RSS (`VmHWM` of
//! `/proc/<pid>/status`; goal ≤ 64 MB) and the notification latency: from the job's end at the
//! ARM double (its `endTime`) to the Slack double receiving its final message, p50 / p99.
//! `--smoke`: 20 jobs of 1–2 s, a few seconds.

use chatops_e2e::app::TestApp;
use chatops_e2e::arm::{READ_BUCKET, READ_REFILL, Script};
use chatops_e2e::process::Service;
use chatops_shared::job::JobMessage;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// The runner's read budget: the subscription's refill, one replica.
const READS_PER_SECOND: &str = "25";

/// How many jobs, how long each runs, how long to wait for them all.
#[derive(Debug, Clone, Copy)]
pub struct FollowPlan {
    pub jobs: usize,
    pub shortest: Duration,
    pub longest: Duration,
    pub patience: Duration,
}

impl FollowPlan {
    pub fn new(smoke: bool) -> Self {
        if smoke {
            FollowPlan {
                jobs: 20,
                shortest: Duration::from_secs(1),
                longest: Duration::from_secs(2),
                patience: Duration::from_secs(60),
            }
        } else {
            // Runbooks of a few minutes, as restarts and deployments are.
            FollowPlan {
                jobs: 2000,
                shortest: Duration::from_secs(60),
                longest: Duration::from_secs(300),
                patience: Duration::from_secs(40 * 60),
            }
        }
    }
}

/// What one run measured.
#[derive(Debug)]
pub struct FollowResult {
    pub plan: FollowPlan,
    pub completed: usize,
    pub reads: usize,
    pub throttled: usize,
    pub peak_rss_kib: Option<u64>,
    /// Per job, its end at ARM to its final Slack message.
    pub latencies: Vec<Duration>,
    pub elapsed: Duration,
}

/// Runs the scenario with the `chatops-runner` binary in `dir`.
pub async fn measure(dir: &Path, plan: FollowPlan) -> anyhow::Result<FollowResult> {
    let app = TestApp::spawn().await;
    app.arm.script(
        "Restart-WebApp",
        Script::runs_for("restarted", plan.shortest, plan.longest),
    );
    app.arm.throttle_reads(READ_BUCKET, READ_REFILL);
    let (wall, clock) = (OffsetDateTime::now_utc(), Instant::now());

    let mut env = app.service_env();
    env.extend(app.arm.env());
    env.extend(
        [
            ("CHATOPS_ARM_READS_PER_SECOND", READS_PER_SECOND.to_owned()),
            ("CHATOPS_RUNNER_CONCURRENCY", plan.jobs.to_string()),
            ("RUST_LOG", "warn".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    let mut runner = Service::start_program(&dir.join("chatops-runner"), &env, None);
    let pid = runner
        .pid()
        .ok_or_else(|| anyhow::anyhow!("the runner did not start"))?;
    eprintln!("follow: runner pid {pid}, {} jobs", plan.jobs);

    let started = Instant::now();
    let mut ids = HashMap::new();
    for _ in 0..plan.jobs {
        let job = job(&app);
        ids.insert(job.short_id(), job.job_id);
        app.put_raw(&app.queue_text(&job)).await;
    }
    let deadline = started + plan.patience;
    let mut peak_rss_kib = None;
    let finals = loop {
        peak_rss_kib = peak_rss(pid).or(peak_rss_kib);
        let finals = final_messages(&app, &ids);
        if finals.len() >= plan.jobs || Instant::now() >= deadline {
            break finals;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let elapsed = started.elapsed();
    peak_rss_kib = peak_rss(pid).or(peak_rss_kib);
    runner.terminate(Duration::from_secs(10)).await;

    let ends: HashMap<String, OffsetDateTime> = app
        .arm
        .jobs()
        .into_iter()
        .filter_map(|j| Some((j.name, j.end_time?)))
        .collect();
    let mut latencies = Vec::new();
    for (id, at) in &finals {
        let name = ids[id].hyphenated().to_string();
        if let Some(end) = ends.get(&name) {
            let told = wall + at.saturating_duration_since(clock);
            latencies.push(Duration::try_from(told - *end).unwrap_or(Duration::ZERO));
        }
    }
    latencies.sort();
    let reads = app
        .arm
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/jobs/"))
        .count();
    let result = FollowResult {
        plan,
        completed: finals.len(),
        reads,
        throttled: app.arm.throttled_reads(),
        peak_rss_kib,
        latencies,
        elapsed,
    };
    app.forget_queue();
    Ok(result)
}

/// An Automation job message as the ingress would queue it (`/runbook restart-web dev`).
fn job(app: &TestApp) -> JobMessage {
    app.run_message("restart-web", &[("env", "dev")])
}

/// Per job short id, when the Slack double received its `Completed` message.
fn final_messages(app: &TestApp, ids: &HashMap<String, uuid::Uuid>) -> HashMap<String, Instant> {
    let mut finals = HashMap::new();
    for message in app.slack.messages() {
        let text = message.text();
        if !text.contains("*Completed*") {
            continue;
        }
        if let Some(id) = text
            .rsplit("(job `")
            .next()
            .and_then(|s| s.split('`').next())
            .filter(|id| ids.contains_key(*id))
        {
            finals.entry(id.to_owned()).or_insert(message.at);
        }
    }
    finals
}

/// The value at quantile `q` (0..=1) of sorted `values` (nearest rank).
fn percentile(values: &[Duration], q: f64) -> Option<Duration> {
    let rank = ((values.len() as f64) * q).ceil() as usize;
    values.get(rank.clamp(1, values.len().max(1)) - 1).copied()
}

/// `VmHWM` of a process (its peak resident set), in KiB.
fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Prints the result and which goals are met; `false` when a job was not reported.
pub fn print(result: &FollowResult) -> bool {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let plan = &result.plan;
    let ms = |d: Option<&Duration>| d.map_or("-".to_owned(), |d| format!("{} ms", d.as_millis()));
    let p = |q: f64| percentile(&result.latencies, q);
    let all = result.completed == plan.jobs;
    let calm = (result.throttled as f64) <= result.reads as f64 * 0.01;
    println!();
    println!(
        "follow capacity ({cores} cores): one runner, {} Automation jobs of {}–{} s, ARM reads throttled at {READ_REFILL}/s (bucket {READ_BUCKET}), CHATOPS_ARM_READS_PER_SECOND={READS_PER_SECOND}",
        plan.jobs,
        plan.shortest.as_secs(),
        plan.longest.as_secs()
    );
    println!(
        "  completed {}/{} in {:.0} s  [{}]",
        result.completed,
        plan.jobs,
        result.elapsed.as_secs_f64(),
        if all { "goal met" } else { "goal missed" }
    );
    println!(
        "  ARM reads {} ({:.1}/s), answered 429: {}  [{}]",
        result.reads,
        result.reads as f64 / result.elapsed.as_secs_f64().max(1.0),
        result.throttled,
        if calm { "no storm" } else { "storm" }
    );
    // The goal read strictly: 64 MB = 64,000,000 bytes (61.0 MiB).
    let rss_mb = result.peak_rss_kib.map(|k| k as f64 * 1024.0 / 1e6);
    println!(
        "  runner peak RSS {}  [{}]",
        rss_mb.map_or("-".to_owned(), |mb| format!(
            "{mb:.1} MB ({:.1} MiB)",
            mb * 1e6 / 1024.0 / 1024.0
        )),
        match rss_mb {
            Some(mb) if mb <= 64.0 => "goal ≤ 64 MB met",
            Some(_) => "goal ≤ 64 MB missed",
            None => "not measured",
        }
    );
    println!(
        "  notification latency after a job ends: p50 {}, p99 {}, max {} ({} jobs)",
        ms(p(0.50).as_ref()),
        ms(p(0.99).as_ref()),
        ms(result.latencies.last()),
        result.latencies.len()
    );
    all
}
