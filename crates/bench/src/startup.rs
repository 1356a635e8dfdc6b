//! Start-up: from spawning a service binary to its `/readyz` answering 200, with the queue up,
//! for the ingress and the runner, many times each.
//!
//! The bench picks the health port itself (a free loopback port), so it can poll `/readyz`
//! from the moment the process is spawned (every millisecond, refused connections included),
//! without waiting for a log line. Each process is killed once it answered.

use crate::Plan;
use crate::services::{self, Bench, goal};
use chatops_e2e::process::Service;
use std::time::{Duration, Instant};

/// Goal (issue 11), judged on the p99.
const GOAL_MS: f64 = 50.0;

pub async fn run(bench: &mut Bench, plan: &Plan) -> anyhow::Result<bool> {
    let repeats = if plan.smoke { 3 } else { 100 };
    let queue = bench.fresh_queue("startup").await?;
    let mut rows = Vec::new();
    for (binary, addr_var) in [
        ("chatops-ingress", "CHATOPS_INGRESS_ADDR"),
        ("chatops-runner", "CHATOPS_RUNNER_ADDR"),
    ] {
        let mut times = Vec::with_capacity(repeats);
        for i in 0..=repeats {
            let addr = format!("127.0.0.1:{}", services::free_port()?);
            let env = bench.env(&queue, &[(addr_var, addr.clone())]);
            let started = Instant::now();
            let mut service = Service::start_program(&bench.bin.join(binary), &env, None);
            let ready = services::ready(&bench.client, &addr, Duration::from_secs(10)).await;
            let took = started.elapsed();
            service.kill().await;
            ready?;
            // The first start warms the page cache: not counted.
            if i > 0 {
                times.push(took.as_secs_f64() * 1000.0);
            }
        }
        times.sort_by(f64::total_cmp);
        rows.push((binary, times));
    }

    println!();
    println!(
        "start-up (spawn → /readyz 200, queue up): {} cores, {repeats} starts each after one uncounted",
        services::cores()
    );
    println!("| binary | starts | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|");
    let mut goals = Vec::new();
    for (binary, times) in &rows {
        let p99 = services::quantile(times, 0.99);
        println!(
            "| {binary} | {} | {:.1} | {p99:.1} | {:.1} |",
            times.len(),
            services::quantile(times, 0.5),
            times.last().copied().unwrap_or(0.0),
        );
        goals.push(goal(
            &format!("{binary}: start-up p99 {p99:.0} ms (goal <= {GOAL_MS} ms)"),
            p99 <= GOAL_MS,
        ));
    }
    services::print_goals(plan, &goals);
    Ok(true)
}
