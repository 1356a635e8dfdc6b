//! Dispatch latency: from a command's enqueue to its Automation job's PUT at the ARM test
//! server, with 1 and 4 `chatops-runner` processes, under a steady stream of commands.
//!
//! Each command is `/runbook dispatch n=<tag>` through the ingress binary; the runners start
//! its Automation job, whose PUT carries the tag as a parameter, so every PUT is matched to its
//! command and **counted at the ARM test server** (a command answered but never dispatched is a
//! failure). The enqueue instant is when the ingress's acknowledgement reached the bench (the
//! ingress answers once Put Message returned); the PUT instant is when the ARM test server
//! created the job. Both clocks are this process's.

use crate::Plan;
use crate::ingress::Commands;
use crate::services::{self, Bench, goal};
use crate::stats::{Run, Summary};
use std::collections::HashMap;
use std::time::Duration;
use time::OffsetDateTime;

/// Commands per second in the steady stream.
const RATE: f64 = 10.0;
/// The runner counts measured.
const RUNNERS: [usize; 2] = [1, 4];
/// Goals (issue 11).
const P50_GOAL_MS: f64 = 150.0;
const P99_GOAL_MS: f64 = 1000.0;
/// How long a PUT may take to come after its acknowledgement before it counts as missing.
const PUT_PATIENCE: Duration = Duration::from_secs(30);

/// One command of a stream: when it was sent, and when its acknowledgement came (if it did).
pub struct Sample {
    pub tag: String,
    pub sent: OffsetDateTime,
    pub acked: Option<OffsetDateTime>,
}

/// Sends `/runbook dispatch n=<tag>`; the sample says when it was sent and acknowledged.
pub async fn send(commands: &Commands, tag: String) -> Sample {
    let sent = OffsetDateTime::now_utc();
    let answer = commands.post(&format!("dispatch n={tag}"), "1.2.3").await;
    let acked = answer
        .is_some_and(|a| a["response_type"] == "in_channel")
        .then(OffsetDateTime::now_utc);
    Sample { tag, sent, acked }
}

/// Waits until the ARM test server got a PUT for every tag in `tags` (or `PUT_PATIENCE`
/// passed); when each arrived, by tag.
pub async fn puts(bench: &Bench, tags: &[&str]) -> HashMap<String, OffsetDateTime> {
    let deadline = tokio::time::Instant::now() + PUT_PATIENCE;
    loop {
        let arrived: HashMap<String, OffsetDateTime> = bench
            .app
            .arm
            .jobs()
            .into_iter()
            .filter_map(|job| Some((job.params.get("n")?.clone(), job.creation_time)))
            .filter(|(tag, _)| tags.contains(&tag.as_str()))
            .collect();
        if arrived.len() >= tags.len() || tokio::time::Instant::now() >= deadline {
            return arrived;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Milliseconds from `from` to `to`, 0 when `to` came first.
pub fn ms(from: OffsetDateTime, to: OffsetDateTime) -> Duration {
    (to - from).try_into().unwrap_or(Duration::ZERO)
}

/// One stream: enqueue → PUT latencies (sorted) as a [`Run`]: `ok` acknowledged, `errors` not
/// acknowledged, `queued` dispatched (PUTs counted); and command → PUT latencies (sorted).
async fn stream(bench: &Bench, commands: &Commands, prefix: &str, length: Duration) -> (Run, Run) {
    let count = ((length.as_secs_f64() * RATE) as usize).max(1);
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / RATE));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started = std::time::Instant::now();
    let mut sending = tokio::task::JoinSet::new();
    for i in 0..count {
        ticks.tick().await;
        let commands = commands.clone();
        let tag = format!("{prefix}-{i}");
        sending.spawn(async move { send(&commands, tag).await });
    }
    let mut samples = Vec::with_capacity(count);
    while let Some(sample) = sending.join_next().await {
        if let Ok(sample) = sample {
            samples.push(sample);
        }
    }
    let acked: Vec<&Sample> = samples.iter().filter(|s| s.acked.is_some()).collect();
    let tags: Vec<&str> = acked.iter().map(|s| s.tag.as_str()).collect();
    let arrived = puts(bench, &tags).await;
    let elapsed = started.elapsed();
    let mut enqueue = Vec::new();
    let mut command = Vec::new();
    for sample in &acked {
        if let (Some(put), Some(acked)) = (arrived.get(&sample.tag), sample.acked) {
            enqueue.push(ms(acked, *put));
            command.push(ms(sample.sent, *put));
        }
    }
    enqueue.sort();
    command.sort();
    let run = |latencies: Vec<Duration>| Run {
        ok: acked.len(),
        errors: count - acked.len(),
        queued: arrived.len() as u64,
        elapsed,
        latencies,
        server_cpu: None,
    };
    (run(enqueue), run(command))
}

/// Measures both runner counts and prints the table; false when a command was not
/// acknowledged or an acknowledged one was never dispatched.
pub async fn run(bench: &mut Bench, plan: &Plan) -> anyhow::Result<bool> {
    let length = if plan.smoke {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(60)
    };
    let mut rows = Vec::new();
    for runners in RUNNERS {
        let queue = bench.fresh_queue(&format!("dispatch{runners}")).await?;
        let env = bench.env(&queue, &[]);
        let (mut ingress, addr) = bench.ingress(&env).await?;
        let mut processes = Vec::new();
        for _ in 0..runners {
            processes.push(bench.runner(&env).await?);
        }
        let commands = Commands::new(&addr, &bench.app, bench.client.clone());
        // Warm-up: the runners' token, connections and first records.
        let warm = send(&commands, format!("warm{runners}")).await;
        puts(bench, &[warm.tag.as_str()]).await;
        let mut enqueue = Vec::new();
        let mut command = Vec::new();
        for repeat in 1..=plan.repeats {
            eprintln!(
                "dispatch: {runners} runner(s), repeat {repeat}/{}",
                plan.repeats
            );
            let (e, c) = stream(bench, &commands, &format!("s{runners}r{repeat}"), length).await;
            enqueue.push(e);
            command.push(c);
        }
        for mut process in processes {
            process.kill().await;
        }
        ingress.kill().await;
        rows.push((runners, enqueue, command));
    }

    println!();
    println!(
        "dispatch latency: {} cores, {RATE} commands/s for {} s, {} repeat(s); median (min–max) of the repeats",
        services::cores(),
        length.as_secs(),
        plan.repeats
    );
    println!(
        "| runners | sent | acknowledged | dispatched (PUTs) | enqueue→PUT p50 ms | p99 ms | max ms | command→PUT p50 ms | p99 ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut ok = true;
    let mut goals = Vec::new();
    for (runners, enqueue, command) in &rows {
        let sent: usize = enqueue.iter().map(|r| r.ok + r.errors).sum();
        let acked: usize = enqueue.iter().map(|r| r.ok).sum();
        let dispatched: u64 = enqueue.iter().map(|r| r.queued).sum();
        ok &= acked == sent && dispatched == acked as u64;
        let p50 = Summary::of(enqueue.iter().map(|r| r.quantile_ms(0.5)));
        let p99 = Summary::of(enqueue.iter().map(|r| r.quantile_ms(0.99)));
        println!(
            "| {runners} | {sent} | {acked} | {dispatched} | {} | {} | {} | {} | {} |",
            p50.show(1),
            p99.show(1),
            Summary::of(enqueue.iter().map(Run::max_ms)).show(1),
            Summary::of(command.iter().map(|r| r.quantile_ms(0.5))).show(1),
            Summary::of(command.iter().map(|r| r.quantile_ms(0.99))).show(1),
        );
        goals.push(goal(
            &format!(
                "{runners} runner(s): enqueue→PUT p50 {:.0} ms (goal <= {P50_GOAL_MS} ms)",
                p50.median
            ),
            p50.median <= P50_GOAL_MS,
        ));
        goals.push(goal(
            &format!(
                "{runners} runner(s): enqueue→PUT p99 {:.0} ms (goal <= {P99_GOAL_MS} ms)",
                p99.median
            ),
            p99.median <= P99_GOAL_MS,
        ));
    }
    services::print_goals(plan, &goals);
    if !ok {
        eprintln!("chatops-bench: dispatch: some commands were not acknowledged or not dispatched");
    }
    Ok(ok)
}
