//! Acknowledgements while the backends are slow or down: the ingress binary under load (4
//! connections, closed loop) while
//! - the Slack test server answers the Web API after 2 s, then while it is down (connection
//!   refused), with commands whose acknowledgement calls Slack: `grouped` (allowed through a user
//!   group: `usergroups.users.list`, capped at 1 s; the member list is cached for 1 ms only, so
//!   every command asks) and `form --form` (`views.open`);
//! - the ARM test server answers after 2 s (a delaying proxy in front of it), then is down,
//!   with two `chatops-runner` processes taking the `dispatch` commands meanwhile.
//!
//! Every answer is timed; the goal is no acknowledgement over 3 s (Slack's limit) and none
//! missing. Refusals ("could not check your user group", "the form could not open") are
//! answers: the user is told in time.

use crate::Plan;
use crate::ingress::Commands;
use crate::proxy::Proxy;
use crate::services::{self, Bench, goal};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const CONNECTIONS: usize = 4;
/// How slow a slow backend is.
const SLOW: Duration = Duration::from_secs(2);
/// Slack gives up on an acknowledgement after this.
const SLACK_LIMIT_MS: f64 = 3000.0;
/// The Web API methods on the acknowledgement's path.
const SLACK_METHODS: [&str; 2] = ["usergroups.users.list", "views.open"];

/// One timed command: which kind, how long its answer took, and its `response_type` (`None`:
/// no answer).
struct Timed {
    kind: &'static str,
    ms: f64,
    answer: Option<String>,
}

/// The figures of one backend state and command kind.
struct Row {
    state: &'static str,
    kind: &'static str,
    timed: Vec<f64>,
    unanswered: usize,
    in_channel: usize,
    ephemeral: usize,
}

pub async fn run(bench: &mut Bench, plan: &Plan) -> anyhow::Result<bool> {
    let length = if plan.smoke {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(20)
    };
    let queue = bench.fresh_queue("degraded").await?;
    let bot = [
        ("SLACK_BOT_TOKEN", chatops_e2e::slack::BOT_TOKEN.to_owned()),
        ("CHATOPS_USERGROUP_TTL", "1ms".to_owned()),
    ];
    let mut rows = Vec::new();

    // Slack slow, then down.
    let (mut ingress, addr) = bench.ingress(&bench.env(&queue, &bot)).await?;
    let slack_commands = ["grouped", "form"];
    for method in SLACK_METHODS {
        bench.app.slack.delay_method(method, SLOW);
    }
    let timed = load(bench, &addr, &slack_commands, length).await;
    rows.extend(rows_of("Slack slow (2 s)", &slack_commands, &timed));
    for method in SLACK_METHODS {
        bench.app.slack.delay_method(method, Duration::ZERO);
    }
    let slack_down = format!("{}/api", services::down_url()?);
    let mut env = bench.env(&queue, &bot);
    env.retain(|(name, _)| name != "SLACK_API_BASE_URL");
    env.push(("SLACK_API_BASE_URL".to_owned(), slack_down));
    let (mut down_ingress, down_addr) = bench.ingress(&env).await?;
    let timed = load(bench, &down_addr, &slack_commands, length).await;
    rows.extend(rows_of("Slack down", &slack_commands, &timed));
    down_ingress.kill().await;

    // ARM slow, then down, with two runners taking the jobs.
    let arm = Proxy::start(bench.app.arm.url().as_str()).await?;
    arm.set_delay(SLOW);
    for (state, endpoint) in [
        ("ARM slow (2 s), 2 runners", arm.url()),
        ("ARM down, 2 runners", services::down_url()?),
    ] {
        let env = bench.env(&queue, &[("CHATOPS_ARM_ENDPOINT", format!("{endpoint}/"))]);
        let mut runners = vec![bench.runner(&env).await?, bench.runner(&env).await?];
        arm.take_counts();
        let timed = load(bench, &addr, &["dispatch"], length).await;
        rows.extend(rows_of(state, &["dispatch"], &timed));
        for runner in &mut runners {
            runner.kill().await;
        }
        // That the runners were at work on the slow ARM meanwhile.
        let held: u64 = arm.take_counts().values().sum();
        if held > 0 {
            eprintln!("degraded: {state}: {held} request(s) reached the slow ARM");
        }
    }
    ingress.kill().await;

    println!();
    println!(
        "acknowledgements with slow or down backends: {} cores, {CONNECTIONS} connections, {} s per state",
        services::cores(),
        length.as_secs()
    );
    println!(
        "| backend | command | answered | no answer | over 3 s | p50 ms | p99 ms | max ms | in_channel / ephemeral |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut goals = Vec::new();
    let mut ok = true;
    for row in &rows {
        let over = row.timed.iter().filter(|ms| **ms > SLACK_LIMIT_MS).count();
        ok &= row.unanswered == 0 && !row.timed.is_empty();
        println!(
            "| {} | {} | {} | {} | {over} | {:.1} | {:.1} | {:.1} | {} / {} |",
            row.state,
            row.kind,
            row.timed.len(),
            row.unanswered,
            services::quantile(&row.timed, 0.5),
            services::quantile(&row.timed, 0.99),
            row.timed.last().copied().unwrap_or(0.0),
            row.in_channel,
            row.ephemeral,
        );
        goals.push(goal(
            &format!(
                "{}, {}: {over} acknowledgement(s) over 3 s and {} unanswered (goal: none)",
                row.state, row.kind, row.unanswered
            ),
            over == 0 && row.unanswered == 0,
        ));
    }
    services::print_goals(plan, &goals);
    if !ok {
        eprintln!("chatops-bench: degraded: some commands got no answer");
    }
    Ok(ok)
}

/// `CONNECTIONS` workers sending the `kinds` in turn to the ingress at `addr` for `length`.
async fn load(bench: &Bench, addr: &str, kinds: &[&'static str], length: Duration) -> Vec<Timed> {
    let commands = Commands::new(addr, &bench.app, bench.client.clone());
    let next = AtomicUsize::new(0);
    let until = Instant::now() + length;
    let worker = || async {
        let mut timed = Vec::new();
        while Instant::now() < until {
            let n = next.fetch_add(1, Ordering::Relaxed);
            let kind = kinds[n % kinds.len()];
            let (text, trigger) = match kind {
                // A trigger lives 3 s: minted by the Slack double as the command is sent.
                "form" => ("form --form".to_owned(), bench.app.slack.trigger_id()),
                other => (format!("{other} n=degraded-{n}"), "1.2.3".to_owned()),
            };
            let sent = Instant::now();
            let answer = commands.post(&text, &trigger).await;
            let ms = sent.elapsed().as_secs_f64() * 1000.0;
            let answer = answer.map(|a| a["response_type"].as_str().unwrap_or("").to_owned());
            timed.push(Timed { kind, ms, answer });
        }
        timed
    };
    futures::future::join_all((0..CONNECTIONS).map(|_| worker()))
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// One row per kind of command.
fn rows_of(state: &'static str, kinds: &[&'static str], timed: &[Timed]) -> Vec<Row> {
    kinds
        .iter()
        .map(|kind| {
            let mine: Vec<&Timed> = timed.iter().filter(|t| t.kind == *kind).collect();
            let mut ms: Vec<f64> = mine
                .iter()
                .filter(|t| t.answer.is_some())
                .map(|t| t.ms)
                .collect();
            ms.sort_by(f64::total_cmp);
            let answered = |what: &str| {
                mine.iter()
                    .filter(|t| t.answer.as_deref() == Some(what))
                    .count()
            };
            Row {
                state,
                kind,
                unanswered: mine.len() - ms.len(),
                in_channel: answered("in_channel"),
                ephemeral: answered("ephemeral"),
                timed: ms,
            }
        })
        .collect()
}
