//! Azure's limits end to end (real Azurite, the ingress, a worker, the ARM double's throttle and
//! Automation limits, the Slack double): one runner's ARM reads stay inside its budget however
//! many jobs it follows; it slows down when ARM says the subscription's budget runs low or
//! answers 429, and loses no job; a job Automation holds back shows as waiting, then running,
//! then its end on its card; a start refused at the new-jobs limit is retried, shown as
//! waiting, and runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::http::Method;
use chatops_e2e::app::{ALICE, OPS, TestApp};
use chatops_e2e::arm::Script;
use chatops_runner::executor::arm::ReadBudget;
use chatops_runner::notify::bot::BotSettings;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Sends `n` Automation commands; their short job ids.
async fn submit(app: &TestApp, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let answer = app.command(ALICE, OPS, "restart-web dev").await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        ids.push(TestApp::short_id(&answer));
    }
    ids
}

/// Waits until every job's Slack messages contain `needle`.
async fn all_report(app: &TestApp, ids: &[String], needle: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let pending: Vec<&String> = ids
            .iter()
            .filter(|id| app.slack_count(id, needle) == 0)
            .collect();
        if pending.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} jobs never reported {needle}: {pending:?}",
            pending.len(),
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// When the ARM double answered each read of the jobs API.
fn read_times(app: &TestApp) -> Vec<Instant> {
    let mut times: Vec<Instant> = app
        .arm
        .requests()
        .into_iter()
        .filter(|r| r.method == Method::GET && r.path.contains("/jobs/"))
        .map(|r| r.at)
        .collect();
    times.sort();
    times
}

/// The most reads within any one second.
fn busiest_second(times: &[Instant]) -> usize {
    let mut most = 0;
    let mut first = 0;
    for (last, at) in times.iter().enumerate() {
        while at.duration_since(times[first]) >= Duration::from_secs(1) {
            first += 1;
        }
        most = most.max(last - first + 1);
    }
    most
}

fn within(times: &[Instant], from: Instant, to: Instant) -> usize {
    times.iter().filter(|t| **t >= from && **t < to).count()
}

#[tokio::test]
async fn many_followed_jobs_keep_one_runners_reads_within_its_budget() {
    let app = TestApp::spawn().await;
    app.arm.script(
        "Restart-WebApp",
        Script::runs_for("restarted", Duration::from_secs(2), Duration::from_secs(4)),
    );
    const RATE: f64 = 10.0;
    let mut settings = app.worker_settings();
    settings.concurrency = 30;
    // Unpaced, 30 jobs polled every 30 ms would read 1,000 times a second.
    let executors = app.executors_paced(Arc::new(ReadBudget::new(RATE)), Duration::from_millis(30));
    let worker = app.worker_using(executors, settings, Arc::new(app.notifier()));
    let ids = submit(&app, 30).await;
    let runners = app.spawn_workers(vec![worker]);

    all_report(&app, &ids, "*Completed*", Duration::from_secs(90)).await;
    runners.stop().await;

    let times = read_times(&app);
    assert!(times.len() >= 60, "each job was read: {}", times.len());
    // The budget holds one second's reads and refills a second's: no second sees more than two.
    let busiest = busiest_second(&times);
    assert!(
        busiest <= 2 * RATE as usize + 1,
        "{busiest} reads within one second, budget {RATE}/s"
    );
    let span = times[times.len() - 1]
        .duration_since(times[0])
        .as_secs_f64();
    let average = times.len() as f64 / span.max(1.0);
    assert!(average <= RATE * 1.2, "{average:.1} reads/s on average");
    app.finish().await;
}

#[tokio::test]
async fn a_low_remaining_read_budget_slows_the_runner_down() {
    let app = TestApp::spawn().await;
    app.arm.script(
        "Restart-WebApp",
        Script::runs_for("restarted", Duration::from_secs(6), Duration::from_secs(6)),
    );
    const RATE: f64 = 20.0;
    let mut settings = app.worker_settings();
    settings.concurrency = 10;
    let executors = app.executors_paced(Arc::new(ReadBudget::new(RATE)), Duration::from_millis(30));
    let worker = app.worker_using(executors, settings, Arc::new(app.notifier()));
    let ids = submit(&app, 10).await;
    let runners = app.spawn_workers(vec![worker]);
    // Reading at its share while ARM reports a full bucket (250)…
    tokio::time::sleep(Duration::from_secs(2)).await;
    let busy = read_times(&app);
    let low_from = Instant::now();
    assert!(
        within(&busy, low_from - Duration::from_secs(1), low_from) >= (RATE as usize) / 2,
        "the runner used its share before: {} reads",
        busy.len()
    );
    // …then other readers of the subscription leave 10 of 250.
    app.arm.report_remaining_reads(Some(10));
    tokio::time::sleep(Duration::from_secs(5)).await;
    app.arm.report_remaining_reads(None);

    all_report(&app, &ids, "*Completed*", Duration::from_secs(60)).await;
    runners.stop().await;

    let times = read_times(&app);
    // Halved every second it stays low: from 20/s to under 3/s within 3 s.
    let slow = within(
        &times,
        low_from + Duration::from_secs(3),
        low_from + Duration::from_secs(5),
    );
    assert!(slow <= 6, "{slow} reads in 2 s while the budget ran low");
    assert_eq!(app.arm.throttled_reads(), 0);
    app.finish().await;
}

#[tokio::test]
async fn throttled_reads_slow_the_runner_down_and_no_job_is_lost() {
    let app = TestApp::spawn().await;
    app.arm.script(
        "Restart-WebApp",
        Script::runs_for("restarted", Duration::from_secs(3), Duration::from_secs(5)),
    );
    // The subscription's budget is smaller than this runner's share: as when replicas are
    // more than CHATOPS_ARM_READS_PER_SECOND was sized for.
    app.arm.throttle_reads(20.0, 5.0);
    let mut settings = app.worker_settings();
    settings.concurrency = 20;
    let executors = app.executors_paced(Arc::new(ReadBudget::new(20.0)), Duration::from_millis(30));
    let worker = app.worker_using(executors, settings, Arc::new(app.notifier()));
    let ids = submit(&app, 20).await;
    let runners = app.spawn_workers(vec![worker]);

    all_report(&app, &ids, "*Completed*", Duration::from_secs(120)).await;
    runners.stop().await;

    let reads = read_times(&app).len();
    let throttled = app.arm.throttled_reads();
    // A runner that kept its pace would be refused three reads in four, every second.
    assert!(
        throttled <= 12,
        "{throttled} reads answered 429 of {reads}: a 429 storm"
    );
    assert_eq!(app.arm.jobs().len(), 20);
    app.finish().await;
}

#[tokio::test]
async fn a_job_held_back_by_the_concurrent_jobs_limit_shows_waiting_then_running_then_its_end() {
    let app = TestApp::spawn_opts(chatops_e2e::app::Options {
        bot: true,
        ..Default::default()
    })
    .await;
    app.arm.script(
        "Restart-WebApp",
        Script::runs_for("restarted", Duration::from_secs(2), Duration::from_secs(2)),
    );
    app.arm.limit_concurrent_jobs(1);
    app.slack.join(OPS);
    let bot = app.bot_notifier(BotSettings {
        post_interval: Duration::from_millis(20),
        update_interval: Duration::from_millis(10),
        tail_interval: Duration::ZERO,
        call_patience: Duration::from_secs(10),
        automation_account: None,
    });
    let worker = app.worker_notifying(app.worker_settings(), Arc::new(bot));
    let first = submit(&app, 1).await.remove(0);
    let runners = app.spawn_workers(vec![worker]);
    // The first holds the account's only slot before the second is created.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !app.arm.jobs().iter().any(|j| j.status == "Running") {
        assert!(Instant::now() < deadline, "the first job never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let second = submit(&app, 1).await.remove(0);

    all_report(
        &app,
        std::slice::from_ref(&first),
        "Completed",
        Duration::from_secs(30),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let states = loop {
        // The card's fallback text starts with its state, at each post and update.
        let mut calls = app.slack.api_calls("chat.postMessage");
        calls.extend(app.slack.api_calls("chat.update"));
        calls.sort_by_key(|m| m.at);
        let states: Vec<String> = calls
            .iter()
            .filter(|m| m.text().contains(&second) && m.body.get("thread_ts").is_none())
            .filter_map(|m| m.text().split(':').next().map(str::to_owned))
            .collect();
        if states.last().map(String::as_str) == Some("Completed") {
            break states;
        }
        assert!(Instant::now() < deadline, "the held job's card: {states:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    runners.stop().await;
    assert_eq!(
        states,
        ["Waiting", "Running", "Completed"],
        "the held job's card, update by update"
    );
    let card = app
        .slack
        .api_calls("chat.postMessage")
        .into_iter()
        .find(|m| m.text().contains(&second))
        .unwrap();
    assert!(
        card.body.to_string().contains("holds the job back"),
        "the card says why it waits: {}",
        card.body
    );
    app.finish().await;
}

#[tokio::test]
async fn a_start_refused_at_the_new_jobs_limit_is_retried_shown_waiting_and_runs() {
    let app = TestApp::spawn().await;
    app.arm.script(
        "Restart-WebApp",
        Script::runs_for(
            "restarted",
            Duration::from_millis(300),
            Duration::from_millis(300),
        ),
    );
    // Azure's 100 new jobs per 30 s, scaled down: 1 per 8 s (a refusal then asks to wait
    // longer than a short throttle).
    app.arm.limit_new_jobs(1, Duration::from_secs(8));
    let mut settings = app.worker_settings();
    settings.concurrency = 2;
    let worker = app.worker_with(settings);
    let ids = submit(&app, 2).await;
    let runners = app.spawn_workers(vec![worker]);

    all_report(&app, &ids, "*Completed*", Duration::from_secs(30)).await;
    runners.stop().await;

    assert!(app.arm.refused_puts() >= 1, "the limit refused a start");
    assert_eq!(app.arm.jobs().len(), 2, "both jobs ran");
    let waited: Vec<&String> = ids
        .iter()
        .filter(|id| app.slack_count(id, "*waiting*") == 1)
        .collect();
    assert_eq!(waited.len(), 1, "the refused job was shown waiting, once");
    let text = app
        .slack
        .messages()
        .into_iter()
        .find(|m| m.text().contains(waited[0].as_str()) && m.text().contains("*waiting*"))
        .unwrap();
    assert!(
        text.text().contains("limit of new or concurrent jobs"),
        "{}",
        text.text()
    );
    app.finish().await;
}
