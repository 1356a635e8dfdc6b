//! An idle runner: how many queue requests it makes per second while the queue is empty, and
//! how long the first command after the idle spell waits for its dispatch (Storage queues have
//! no long polling, so this is bounded by the runner's idle poll interval).
//!
//! One `chatops-runner` reaches the queue service through a counting proxy ([`Proxy`]): every
//! request it sends to the queue endpoint is counted there, at the storage boundary, whatever
//! the runner's own metrics say. Once the last job's message is gone the runner ramps from
//! quick polls (50 ms, doubling) to its longest idle wait: those first seconds are counted
//! apart ([`RAMP`]), and the goal is judged on the spell after them, when the runner is idle.

use crate::Plan;
use crate::dispatch::{self, ms};
use crate::ingress::Commands;
use crate::proxy::Proxy;
use crate::services::{self, Bench, goal};
use chatops_shared::queue::connection::{DEVSTORE_ACCOUNT, DEVSTORE_KEY};
use std::time::{Duration, Instant};

/// Goals (issue 11).
const RATE_GOAL: f64 = 1.0;
const FIRST_GOAL_MS: f64 = 1200.0;
/// The runner's ramp to its longest idle wait (50 + 100 + … + 800 ms), counted apart (the
/// smoke run counts 1 s apart).
const RAMP: Duration = Duration::from_secs(3);

/// What one idle spell gave.
struct Spell {
    /// Queue requests in the [`RAMP`] after the last job.
    ramp: u64,
    seconds: f64,
    counts: std::collections::BTreeMap<String, u64>,
    /// Enqueue → PUT of the command sent after the spell; `None` when it never came.
    first: Option<Duration>,
}

impl Spell {
    fn requests(&self) -> u64 {
        self.counts.values().sum()
    }
    fn rate(&self) -> f64 {
        self.requests() as f64 / self.seconds.max(f64::EPSILON)
    }
}

pub async fn run(bench: &mut Bench, plan: &Plan) -> anyhow::Result<bool> {
    let (ramp, spell) = if plan.smoke {
        (Duration::from_secs(1), Duration::from_secs(1))
    } else {
        (RAMP, Duration::from_secs(60))
    };
    let queue = bench.fresh_queue("idle").await?;
    let azurite = &bench.app.azurite;
    let proxy = Proxy::start(&azurite.queue_endpoint()).await?;
    let through_proxy = format!(
        "DefaultEndpointsProtocol=http;AccountName={DEVSTORE_ACCOUNT};AccountKey={DEVSTORE_KEY};QueueEndpoint={}/{DEVSTORE_ACCOUNT};BlobEndpoint={};",
        proxy.url(),
        azurite.blob_endpoint()
    );
    let env = bench.env(&queue, &[]);
    let (mut ingress, addr) = bench.ingress(&env).await?;
    let mut runner = bench
        .runner(&bench.env(
            &queue,
            &[("AZURE_STORAGE_CONNECTION_STRING", through_proxy)],
        ))
        .await?;
    let commands = Commands::new(&addr, &bench.app, bench.client.clone());
    let jobs = crate::raw::RawQueue::create(&bench.app, &queue, bench.client.clone()).await?;
    let warm = dispatch::send(&commands, "idle-warm".to_owned()).await;
    dispatch::puts(bench, &[warm.tag.as_str()]).await;

    let mut spells = Vec::new();
    for repeat in 1..=plan.repeats {
        // The last job's message gone, the runner is idle from here.
        let settled = Instant::now() + Duration::from_secs(30);
        while jobs.len().await? > 0 && Instant::now() < settled {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eprintln!(
            "idle: spell {repeat}/{} of {} s",
            plan.repeats,
            spell.as_secs()
        );
        proxy.take_counts();
        tokio::time::sleep(ramp).await;
        let ramped = proxy.take_counts().values().sum();
        let started = Instant::now();
        tokio::time::sleep(spell).await;
        let counts = proxy.take_counts();
        let seconds = started.elapsed().as_secs_f64();
        let sample = dispatch::send(&commands, format!("idle{repeat}")).await;
        let arrived = dispatch::puts(bench, &[sample.tag.as_str()]).await;
        let first = match (sample.acked, arrived.get(&sample.tag)) {
            (Some(acked), Some(put)) => Some(ms(acked, *put)),
            _ => None,
        };
        spells.push(Spell {
            ramp: ramped,
            seconds,
            counts,
            first,
        });
    }
    runner.kill().await;
    ingress.kill().await;

    println!();
    println!(
        "idle runner: {} cores, 1 runner, {} idle spell(s) of {} s after a {} s ramp; queue requests counted at a proxy in front of Azurite's queue endpoint",
        services::cores(),
        spells.len(),
        spell.as_secs(),
        ramp.as_secs()
    );
    println!(
        "| spell | requests in the ramp | requests in the spell | per second | by kind | first command after: enqueue→PUT ms |"
    );
    println!("|---|---|---|---|---|---|");
    for (i, s) in spells.iter().enumerate() {
        let kinds: Vec<String> = s.counts.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        println!(
            "| {} | {} | {} | {:.3} | {} | {} |",
            i + 1,
            s.ramp,
            s.requests(),
            s.rate(),
            kinds.join(", "),
            s.first.map_or("never".to_owned(), |d| format!(
                "{:.1}",
                d.as_secs_f64() * 1000.0
            )),
        );
    }
    let worst_rate = spells.iter().map(Spell::rate).fold(0.0, f64::max);
    let worst_first = spells
        .iter()
        .map(|s| s.first.map_or(f64::INFINITY, |d| d.as_secs_f64() * 1000.0))
        .fold(0.0, f64::max);
    services::print_goals(
        plan,
        &[
            goal(
                &format!(
                    "idle runner: {worst_rate:.3} queue requests/s at most (goal <= {RATE_GOAL})"
                ),
                worst_rate <= RATE_GOAL,
            ),
            goal(
                &format!(
                    "first command after {} s idle: enqueue→PUT {worst_first:.0} ms at most (goal <= {FIRST_GOAL_MS} ms)",
                    (spell + ramp).as_secs()
                ),
                worst_first <= FIRST_GOAL_MS,
            ),
        ],
    );
    let ok = spells.iter().all(|s| s.first.is_some());
    if !ok {
        eprintln!("chatops-bench: idle: a command after the idle spell was never dispatched");
    }
    Ok(ok)
}
