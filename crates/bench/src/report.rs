//! The table: per concurrency, baseline and ingress medians over the repeats with their
//! spread, the ratio of messages queued per second, and which goals are met. Between them, the
//! SDK on its own and a do-nothing hop: what the queue layer and any process in between cost.

use crate::stats::{Run, Summary};
use crate::{Plan, Point};
use std::process::ExitCode;

/// Goals from the issue: the ingress queues at least this share of the baseline's rate...
const MIN_RATIO: f64 = 0.9;
/// ...with an ack p99 at most this multiple of Put Message's p99 at the same concurrency.
const MAX_P99_RATIO: f64 = 1.2;

/// Prints the table; fails when a request failed or an acknowledged message is not on the queue.
pub fn print(plan: &Plan, points: &[Point]) -> ExitCode {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!(
        "chatops-bench: {cores} cores, {} requests per point, {} repeat(s); median (min–max) of the repeats",
        plan.requests, plan.repeats
    );
    println!(
        "| conc | path | queued/s | p50 ms | p99 ms | max ms | errors | queued/sent | ratio to raw | server CPU µs/request |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut missing = false;
    let mut goals = Vec::new();
    for point in points {
        let raw_rate = Summary::of(point.raw.iter().map(Run::queued_per_sec));
        let ingress_rate = Summary::of(point.ingress.iter().map(Run::queued_per_sec));
        let raw_p99 = Summary::of(point.raw.iter().map(|r| r.quantile_ms(0.99)));
        let ingress_p99 = Summary::of(point.ingress.iter().map(|r| r.quantile_ms(0.99)));
        for (path, runs) in [
            ("raw Put Message", &point.raw),
            ("shared::queue (SDK)", &point.sdk),
            ("raw via a hop", &point.hop),
            ("ingress", &point.ingress),
        ] {
            let rate = Summary::of(runs.iter().map(Run::queued_per_sec));
            let ratio = format!("{:.2}x", rate.median / raw_rate.median.max(f64::EPSILON));
            let queued: u64 = runs.iter().map(|r| r.queued).sum();
            let sent: usize = runs.iter().map(|r| r.ok + r.errors).sum();
            // More queued than answered is possible: a try that timed out may have landed
            // before its retry (at-least-once; the runner runs a job id once).
            missing |= runs.iter().any(|r| r.errors > 0 || r.queued < r.ok as u64);
            println!(
                "| {} | {path} | {} | {} | {} | {} | {} | {queued}/{sent} | {ratio} | {} |",
                point.concurrency,
                rate.show(0),
                Summary::of(runs.iter().map(|r| r.quantile_ms(0.5))).show(1),
                Summary::of(runs.iter().map(|r| r.quantile_ms(0.99))).show(1),
                Summary::of(runs.iter().map(Run::max_ms)).show(1),
                runs.iter().map(|r| r.errors).sum::<usize>(),
                server_cpu(runs),
            );
        }
        let ratio = ingress_rate.median / raw_rate.median.max(f64::EPSILON);
        let p99_ratio = ingress_p99.median / raw_p99.median.max(f64::EPSILON);
        goals.push(format!(
            "{} connections: throughput {ratio:.3}x raw (goal >= {MIN_RATIO}x): {}; ack p99 {p99_ratio:.3}x raw p99 (goal <= {MAX_P99_RATIO}x): {}",
            point.concurrency,
            met(ratio >= MIN_RATIO),
            met(p99_ratio <= MAX_P99_RATIO),
        ));
    }
    println!();
    if plan.smoke {
        println!("smoke run: figures not checked against the goals");
    } else {
        for goal in goals {
            println!("{goal}");
        }
    }
    if missing {
        eprintln!("chatops-bench: some requests failed or some messages did not reach the queue");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// The CPU per request (median and spread, µs) of the process between the bench and Azurite;
/// `–` for the paths with none (raw Put Message, and the SDK, whose work is done in the bench
/// process, mixed with the load generator's).
fn server_cpu(runs: &[Run]) -> String {
    let us: Vec<f64> = runs
        .iter()
        .filter_map(|r| r.server_cpu)
        .map(|d| d.as_secs_f64() * 1e6)
        .collect();
    if us.is_empty() {
        "–".to_owned()
    } else {
        Summary::of(us).show(0)
    }
}

fn met(yes: bool) -> &'static str {
    if yes { "met" } else { "NOT met" }
}
