//! The bot-token path end to end (real Azurite, the Slack double's Web API): one card per job
//! updated in place, its place kept in the job record (a runner that takes the job over keeps
//! updating it), the output in the card's thread within Slack's limits, pacing across 100 jobs,
//! and `ok: false` answers that never leave the requester without a status.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chatops_e2e::app::{ALICE, OPS, TestApp};
use chatops_e2e::arm::Script;
use chatops_e2e::slack::{ChatMessage, PathKind, Rate};
use chatops_runner::executor::{FinalState, Outcome};
use chatops_runner::notify::bot::{BotNotifier, BotSettings, INVITE_HINT, MAX_OUTPUT_MESSAGES};
use chatops_runner::notify::slack::{SlackNotifier, SlackNotifierConfig};
use chatops_runner::notify::{Notifier, Update};
use chatops_shared::job::JobMessage;
use chatops_shared::records::record_name_of;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Pacing for tests: Slack's figures, faster.
fn fast() -> BotSettings {
    BotSettings {
        post_interval: Duration::from_millis(20),
        update_interval: Duration::from_millis(10),
        tail_interval: Duration::ZERO,
        call_patience: Duration::from_secs(10),
        automation_account: None,
    }
}

/// The Slack double limits posts and updates a little above the pace `fast` keeps, as Slack's
/// limits are a little above its documented figures (short bursts are tolerated).
fn fast_slack(app: &TestApp) {
    app.slack.set_post_rate(Rate {
        interval: Duration::from_millis(16),
        burst: 5,
    });
    app.slack.set_update_rate(Rate {
        interval: Duration::from_millis(8),
        burst: 5,
    });
}

fn bot_worker(app: &TestApp) -> chatops_runner::worker::Worker {
    app.worker_notifying(app.worker_settings(), Arc::new(app.bot_notifier(fast())))
}

/// The top-level messages of `channel` (cards), and the replies to `card`.
fn cards(app: &TestApp, channel: &str) -> Vec<ChatMessage> {
    app.slack
        .channel_messages(channel)
        .into_iter()
        .filter(|m| m.thread_ts.is_none())
        .collect()
}

fn replies(app: &TestApp, card: &ChatMessage) -> Vec<ChatMessage> {
    app.slack
        .channel_messages(&card.channel)
        .into_iter()
        .filter(|m| m.thread_ts.as_deref() == Some(card.ts.as_str()))
        .collect()
}

/// All the text a message shows (`text` and every text in its blocks).
fn shown(message: &ChatMessage) -> String {
    message.body.to_string()
}

/// Waits until `channel` shows a card with `needle`.
async fn wait_for_card(app: &TestApp, channel: &str, needle: &str) -> ChatMessage {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(card) = cards(app, channel)
            .into_iter()
            .find(|c| shown(c).contains(needle))
        {
            return card;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no card with {needle} in {channel}: {:#?}",
            app.slack.channel_messages(channel)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn slack_message_of(app: &TestApp, job: &JobMessage) -> Option<(String, String)> {
    app.records()
        .read(&record_name_of(job))
        .await
        .unwrap()
        .and_then(|v| v.record.slack_message)
        .map(|m| (m.channel, m.ts))
}

#[tokio::test]
async fn a_job_gets_one_card_updated_in_place_and_its_output_in_the_thread() {
    let app = TestApp::spawn().await;
    fast_slack(&app);
    app.slack.join(OPS);
    app.command(ALICE, OPS, "restart-web prod").await;
    let job = app.peek_jobs().await.remove(0);
    app.drain(&bot_worker(&app)).await;

    let cards = cards(&app, OPS);
    assert_eq!(cards.len(), 1, "one card per job: {cards:#?}");
    let card = &cards[0];
    let text = shown(card);
    assert!(
        text.contains(":white_check_mark:") && text.contains("*Completed*"),
        "{text}"
    );
    assert!(
        text.contains("restart-web") && text.contains("<@UALICE>"),
        "{text}"
    );
    assert!(
        text.contains(&job.short_id()) && text.contains("took "),
        "{text}"
    );
    let portal = format!("/jobs/{}/overview", job.job_id.hyphenated());
    assert!(
        text.contains("https://portal.azure.com/#resource/subscriptions/")
            && text.contains(&portal),
        "{text}"
    );
    assert!(
        card.body["text"]
            .as_str()
            .unwrap()
            .starts_with("Completed: restart-web"),
        "{text}"
    );
    // Posted once (running), updated once (completed): every call on the same message.
    assert_eq!(
        app.slack.api_calls("chat.update").len(),
        card.updates as usize
    );
    assert_eq!(card.updates, 1);
    let thread = replies(&app, card);
    assert_eq!(thread.len(), 1, "{thread:#?}");
    assert!(shown(&thread[0]).contains("restarted 2 of 2 instances"));
    assert_eq!(
        slack_message_of(&app, &job).await,
        Some((card.channel.clone(), card.ts.clone())),
        "the card's place is kept in the job record"
    );
    // The bot path replaces the response_url and the webhook.
    assert!(app.slack.messages_to(PathKind::ResponseUrl).is_empty());
    assert!(app.slack.messages_to(PathKind::Webhook).is_empty());
    app.finish().await;
}

#[tokio::test]
async fn a_runner_that_takes_the_job_over_keeps_updating_the_same_card() {
    let app = TestApp::spawn().await;
    fast_slack(&app);
    app.slack.join(OPS);
    app.arm.script(
        "Restart-WebApp",
        Script::completes("restarted").polls(1, 60),
    );
    app.command(ALICE, OPS, "restart-web prod").await;
    let job = app.peek_jobs().await.remove(0);
    let mut settings = app.worker_settings();
    settings.visibility = Duration::from_secs(2);
    let first = app.worker_notifying(settings.clone(), Arc::new(app.bot_notifier(fast())));
    let dead = tokio::spawn(async move { first.process_next().await });
    let running = wait_for_card(&app, OPS, "*Running*").await;
    // The place goes into the record right after the post, before any update.
    let want = Some((running.channel.clone(), running.ts.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while slack_message_of(&app, &job).await != want {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the card's place never reached the record"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(running.updates, 0);
    dead.abort();
    let _ = dead.await;
    // A second runner, with a notifier of its own (nothing shared but the record).
    let second = app.worker_notifying(settings, Arc::new(app.bot_notifier(fast())));
    app.drain_after_crash(&second).await;

    let cards = cards(&app, OPS);
    assert_eq!(cards.len(), 1, "still one card: {cards:#?}");
    assert_eq!(cards[0].ts, running.ts);
    assert!(shown(&cards[0]).contains("*Completed*"), "{:#?}", cards[0]);
    assert!(
        cards[0].updates >= 2,
        "running again, then completed: {}",
        cards[0].updates
    );
    assert!(shown(&replies(&app, &cards[0])[0]).contains("restarted"));
    app.finish().await;
}

/// A job as the ingress queues it, with the record a runner makes when it takes the job, for
/// notifier-level tests.
async fn queued_job(app: &TestApp) -> JobMessage {
    app.command(ALICE, OPS, "restart-web prod").await;
    let job = app.take_jobs().await.remove(0);
    app.records()
        .claim(
            &job,
            "test-runner",
            time::OffsetDateTime::now_utc(),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    job
}

/// 200 KB of output (multi-byte characters, a line of 60,000 characters, backticks that would
/// close a code block) and an error stream: the thread shows the end within Slack's limits
/// (which the double enforces), says how much was cut and where the rest is.
#[tokio::test]
async fn two_hundred_kilobytes_of_output_go_to_the_thread_within_slacks_limits() {
    let app = TestApp::spawn().await;
    fast_slack(&app);
    app.slack.join(OPS);
    let job = queued_job(&app).await;
    let mut output = String::new();
    let mut n = 0;
    while output.len() < 200 * 1024 {
        output.push_str(&format!("{n}: żółw 日本語 🚀 <b> & ``` ok\n"));
        if n == 300 {
            output.push_str(&"€".repeat(60_000));
            output.push('\n');
        }
        n += 1;
    }
    output.push_str("THE END");
    let now = time::OffsetDateTime::now_utc();
    let outcome = Outcome {
        state: FinalState::Failed,
        output: output.clone(),
        error: Some("disk full\n".repeat(2000)),
        started_at: Some(now - time::Duration::seconds(5)),
        ended_at: now,
        stopped_by: None,
    };
    let notifier = app.bot_notifier(fast());
    notifier
        .notify(&job, &Update::Running { started_at: now })
        .await
        .unwrap();
    notifier
        .notify(&job, &Update::Finished(outcome))
        .await
        .unwrap();

    let cards = cards(&app, OPS);
    assert_eq!(cards.len(), 1);
    assert!(shown(&cards[0]).contains("*Failed*") && shown(&cards[0]).contains("disk full"));
    let thread = replies(&app, &cards[0]);
    assert_eq!(
        thread.len(),
        MAX_OUTPUT_MESSAGES + 1,
        "output replies, then the error stream"
    );
    let refused: Vec<_> = app
        .slack
        .api_calls("chat.postMessage")
        .into_iter()
        .filter(|m| m.raw.contains("thread_ts"))
        .collect();
    assert_eq!(
        refused.len(),
        thread.len(),
        "no reply was refused or retried"
    );
    let first = shown(&thread[0]);
    let total = output.chars().count();
    let total = format!("{},{:03}", total / 1000, total % 1000);
    assert!(
        first.contains(&format!("of {total} characters are shown")),
        "{first}"
    );
    assert!(
        first.contains(&format!("/runbook status {}", job.short_id())),
        "{first}"
    );
    assert!(shown(&thread[MAX_OUTPUT_MESSAGES - 1]).contains("THE END"));
    let last = shown(&thread[MAX_OUTPUT_MESSAGES - 1]);
    assert!(
        last.contains("日本語 🚀 &lt;b&gt; &amp;"),
        "escaped, multi-byte intact: {last}"
    );
    assert!(
        !last.contains("``` ok"),
        "output cannot close its code block"
    );
    assert!(
        first.contains("€€€"),
        "a very long line is split, not dropped"
    );
    let errors = shown(&thread[MAX_OUTPUT_MESSAGES]);
    assert!(
        errors.contains("Error stream") && errors.contains("disk full"),
        "{errors}"
    );
    app.finish().await;
}

/// Slack's error code for posting `message` in `C1`, if it refuses.
async fn code(api: &chatops_shared::slack_api::SlackApi, message: Value) -> Option<String> {
    let soon = tokio::time::Instant::now() + Duration::from_secs(5);
    api.post_message("C1", &message, None, soon)
        .await
        .err()
        .and_then(|e| e.code().map(str::to_owned))
}

#[tokio::test]
async fn the_slack_double_refuses_what_slack_refuses() {
    let app = TestApp::spawn().await;
    app.slack.join("C1");
    let api = app.slack.api_client();
    let soon = || tokio::time::Instant::now() + Duration::from_secs(5);
    let section =
        |n: usize| json!({"type": "section", "text": {"type": "mrkdwn", "text": "a".repeat(n)}});
    let blocks: Vec<Value> = (0..51).map(|_| section(1)).collect();
    assert_eq!(
        code(&api, json!({"text": "t", "blocks": blocks}))
            .await
            .as_deref(),
        Some("invalid_blocks")
    );
    assert_eq!(
        code(&api, json!({"text": "t", "blocks": [section(3001)]}))
            .await
            .as_deref(),
        Some("invalid_blocks")
    );
    let four: Vec<Value> = (0..4).map(|_| section(3000)).collect();
    assert_eq!(
        code(&api, json!({"text": "t", "blocks": four}))
            .await
            .as_deref(),
        Some("msg_too_long")
    );
    let fits: Vec<Value> = (0..4).map(|_| section(2999)).collect();
    assert_eq!(code(&api, json!({"text": "t", "blocks": fits})).await, None);
    // A burst of 2, then 429 with Retry-After.
    app.slack.set_post_rate(Rate {
        interval: Duration::from_secs(60),
        burst: 2,
    });
    let api = app.slack.api_client();
    app.slack.join("C2");
    api.post_message("C2", &json!({"text": "x"}), None, soon())
        .await
        .unwrap();
    api.post_message("C2", &json!({"text": "x"}), None, soon())
        .await
        .unwrap();
    let e = api
        .post_message(
            "C2",
            &json!({"text": "x"}),
            None,
            tokio::time::Instant::now() + Duration::from_millis(300),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            chatops_shared::slack_api::SlackApiError::RateLimited { .. }
        ),
        "{e:?}"
    );
    assert_eq!(app.slack.rate_limited_calls(), 1);
    app.finish().await;
}

/// 100 jobs at once in one channel: every card ends with its final status, and pacing keeps
/// the double's rate limit (about Slack's, faster) from answering 429 more than a few times.
#[tokio::test]
async fn a_hundred_jobs_in_one_channel_all_show_their_end_without_a_429_storm() {
    let app = TestApp::spawn().await;
    fast_slack(&app);
    app.slack.join(OPS);
    app.arm
        .script("Restart-WebApp", Script::completes("restarted").polls(0, 1));
    app.command(ALICE, OPS, "restart-web prod").await;
    let template = app.take_jobs().await.remove(0);
    for _ in 0..100 {
        let job = JobMessage {
            job_id: Uuid::new_v4(),
            response_url: None,
            ..template.clone()
        };
        app.put_raw(&app.queue_text(&job)).await;
    }
    let notifier: Arc<dyn Notifier> = Arc::new(app.bot_notifier(fast()));
    let mut settings = app.worker_settings();
    settings.concurrency = 25;
    let runners = app.spawn_workers(
        (0..4)
            .map(|_| app.worker_notifying(settings.clone(), notifier.clone()))
            .collect(),
    );
    let started = std::time::Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let done = cards(&app, OPS)
            .iter()
            .filter(|c| shown(c).contains("*Completed*"))
            .count();
        if done == 100 {
            eprintln!(
                "all 100 jobs show their end after {:?}; {} calls answered 429",
                started.elapsed(),
                app.slack.rate_limited_calls()
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{done} of 100 jobs show their end"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Wait for the last thread replies and deletes, then stop.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while app.slack.channel_messages(OPS).len() < 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "thread replies missing: {} messages, {} answered 429",
            app.slack.channel_messages(OPS).len(),
            app.slack.rate_limited_calls()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    runners.stop().await;
    assert_eq!(cards(&app, OPS).len(), 100, "one card per job");
    let limited = app.slack.rate_limited_calls();
    assert!(limited <= 3, "{limited} calls were answered 429");
    app.finish().await;
}

#[tokio::test]
async fn a_deleted_card_is_posted_anew() {
    let app = TestApp::spawn().await;
    fast_slack(&app);
    app.slack.join(OPS);
    let job = queued_job(&app).await;
    let notifier = app.bot_notifier(fast());
    let now = time::OffsetDateTime::now_utc();
    notifier
        .notify(&job, &Update::Running { started_at: now })
        .await
        .unwrap();
    let first = wait_for_card(&app, OPS, "*Running*").await;
    app.slack.delete_message(&first.ts);
    let done = Outcome {
        state: FinalState::Completed,
        output: "fine".into(),
        error: None,
        started_at: Some(now),
        ended_at: time::OffsetDateTime::now_utc(),
        stopped_by: None,
    };
    notifier
        .notify(&job, &Update::Finished(done))
        .await
        .unwrap();
    let card = wait_for_card(&app, OPS, "*Completed*").await;
    assert_ne!(card.ts, first.ts);
    assert_eq!(
        slack_message_of(&app, &job).await,
        Some((card.channel.clone(), card.ts.clone()))
    );
    assert!(shown(&replies(&app, &card)[0]).contains("fine"));
    app.finish().await;
}

fn completed() -> Update {
    let now = time::OffsetDateTime::now_utc();
    Update::Finished(Outcome {
        state: FinalState::Completed,
        output: "fine".into(),
        error: None,
        started_at: Some(now - time::Duration::seconds(3)),
        ended_at: now,
        stopped_by: None,
    })
}

#[tokio::test]
async fn when_the_cards_channel_is_gone_the_requester_gets_it_by_dm() {
    let app = TestApp::spawn().await;
    fast_slack(&app);
    app.slack.join(OPS);
    let job = queued_job(&app).await;
    let notifier = app.bot_notifier(fast());
    let now = time::OffsetDateTime::now_utc();
    notifier
        .notify(&job, &Update::Running { started_at: now })
        .await
        .unwrap();
    wait_for_card(&app, OPS, "*Running*").await;
    app.slack.remove_channel(OPS);
    notifier.notify(&job, &completed()).await.unwrap();
    let dm = wait_for_card(&app, "DUALICE", "*Completed*").await;
    assert_eq!(
        slack_message_of(&app, &job).await,
        Some((dm.channel.clone(), dm.ts.clone()))
    );
    assert!(shown(&replies(&app, &dm)[0]).contains("fine"));
    app.finish().await;
}

#[tokio::test]
async fn outside_the_bots_channels_the_job_shows_through_the_response_url_with_an_invite_hint() {
    let app = TestApp::spawn().await;
    fast_slack(&app);
    let job = queued_job(&app).await;
    let notifier = app.bot_notifier(fast());
    let now = time::OffsetDateTime::now_utc();
    notifier
        .notify(&job, &Update::Running { started_at: now })
        .await
        .unwrap();
    notifier.notify(&job, &completed()).await.unwrap();
    let posts = app.slack.messages_to(PathKind::ResponseUrl);
    let in_channel: Vec<_> = posts
        .iter()
        .filter(|m| m.body["response_type"] == "in_channel")
        .collect();
    assert_eq!(in_channel.len(), 2, "{posts:#?}");
    assert!(in_channel[1].text().contains("*Completed*"));
    let hints: Vec<_> = posts
        .iter()
        .filter(|m| m.body["response_type"] == "ephemeral")
        .collect();
    assert_eq!(hints.len(), 1, "one hint: {posts:#?}");
    assert_eq!(hints[0].text(), INVITE_HINT);
    assert!(cards(&app, OPS).is_empty());
    assert_eq!(
        app.slack.api_calls("chat.postMessage").len(),
        1,
        "tried once, then the response_url"
    );
    app.finish().await;
}

#[tokio::test]
async fn outside_the_bots_channels_a_final_status_with_no_slack_path_left_goes_to_the_dm() {
    let app = TestApp::spawn().await;
    fast_slack(&app);
    let job = queued_job(&app).await;
    // No webhook: once the response_url is used up, only the bot can still tell the requester.
    let fallback = SlackNotifier::new(SlackNotifierConfig {
        webhook_url: None,
        response_url_prefix: app.slack.base_url(),
    })
    .expect("notifier");
    let mut settings = fast();
    settings.automation_account = Some(
        "/subscriptions/s/resourceGroups/g/providers/Microsoft.Automation/automationAccounts/a"
            .into(),
    );
    let notifier = BotNotifier::new(app.slack.api_client(), app.records(), fallback, settings);
    let now = time::OffsetDateTime::now_utc();
    // Four statuses and the invite hint: Slack's five uses of a response_url.
    for _ in 0..4 {
        notifier
            .notify(&job, &Update::Running { started_at: now })
            .await
            .unwrap();
    }
    assert_eq!(app.slack.messages_to(PathKind::ResponseUrl).len(), 5);
    notifier.notify(&job, &completed()).await.unwrap();
    wait_for_card(&app, "DUALICE", "*Completed*").await;
    assert_eq!(app.slack.messages_to(PathKind::ResponseUrl).len(), 5);
    app.finish().await;
}

#[tokio::test]
async fn when_the_bot_cannot_post_at_all_the_final_status_goes_through_the_response_url() {
    let app = TestApp::spawn().await;
    fast_slack(&app);
    app.slack.join(OPS);
    let job = queued_job(&app).await;
    let notifier = app.bot_notifier(fast());
    // The token was revoked: every Web API call is refused for good.
    app.slack.fail_method_next(
        "chat.postMessage",
        10,
        200,
        r#"{"ok":false,"error":"token_revoked"}"#,
    );
    notifier.notify(&job, &completed()).await.unwrap();
    let posts = app.slack.messages_to(PathKind::ResponseUrl);
    assert!(
        posts.iter().any(|m| m.text().contains("*Completed*")),
        "{posts:#?}"
    );
    app.finish().await;
}

#[tokio::test]
async fn a_job_without_a_response_url_outside_the_bots_channels_goes_to_the_requesters_dm() {
    let app = TestApp::spawn().await;
    fast_slack(&app);
    let job = JobMessage {
        response_url: None,
        ..queued_job(&app).await
    };
    let notifier: BotNotifier = app.bot_notifier(fast());
    let now = time::OffsetDateTime::now_utc();
    notifier
        .notify(&job, &Update::Running { started_at: now })
        .await
        .unwrap();
    notifier.notify(&job, &completed()).await.unwrap();
    let dm = wait_for_card(&app, "DUALICE", "*Completed*").await;
    assert_eq!(dm.updates, 1);
    assert!(app.slack.messages_to(PathKind::ResponseUrl).is_empty());
    app.finish().await;
}
