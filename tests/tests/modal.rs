//! Forms for parameters and interactions, end to end: a command that lacks values (or says
//! `--form`) opens a modal built from the catalog within Slack's 3 s; its submission, signed as
//! Slack signs it, goes through the same checks as a typed command and is queued once; errors
//! show next to their field; forged interactions are refused; a trigger Slack no longer takes
//! falls back to the usage text; and slow Slack or a slow queue never push an answer past 3 s.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chatops_e2e::app::{ALICE, Answer, OPS, Options, RANDOM, SIGNING_SECRET, TestApp};
use chatops_e2e::shaped_queue::ShapedQueue;
use chatops_ingress::app::{AppState, Application};
use chatops_ingress::slack::verify::{Verifier, sign};
use chatops_shared::audit::{AuditEvent, AuditLog};
use chatops_shared::queue::JobQueue;
use chatops_shared::secret::Secret;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Slack stops waiting for an answer after this.
const SLACK_PATIENCE: Duration = Duration::from_secs(3);

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

async fn bot_app() -> TestApp {
    TestApp::spawn_opts(Options {
        bot: true,
        ..Options::default()
    })
    .await
}

/// A signed command carrying `trigger`, as Slack sends one; and how long the answer took.
async fn command_with(
    app: &TestApp,
    url: &str,
    trigger: &str,
    user: &str,
    channel: &str,
    text: &str,
) -> (Answer, Duration) {
    let body = app.form(user, channel, text);
    assert!(body.contains("trigger_id=1.2.3"), "{body}");
    let body = body.replace("trigger_id=1.2.3", &format!("trigger_id={trigger}"));
    post(
        app,
        &format!("{url}/slack/commands"),
        body,
        now(),
        SIGNING_SECRET,
    )
    .await
}

async fn post(
    app: &TestApp,
    url: &str,
    body: String,
    timestamp: i64,
    secret: &str,
) -> (Answer, Duration) {
    let signature = sign(secret, timestamp, body.as_bytes());
    let started = Instant::now();
    let response = app
        .client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", timestamp.to_string())
        .header("x-slack-signature", signature)
        .body(body)
        .send()
        .await
        .expect("ingress answers");
    let answer = Answer {
        status: response.status().as_u16(),
        body: response.text().await.unwrap_or_default(),
    };
    (answer, started.elapsed())
}

/// Alice's `text` in #ops, which opens a form: the form, once the command was answered 200.
async fn open_form(app: &TestApp, text: &str) -> Value {
    let trigger = app.slack.trigger_id();
    let (answer, _) = command_with(app, &app.ingress_url, &trigger, ALICE, OPS, text).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    opened_views(app).pop().expect("a form opened")
}

/// The views the ingress opened, in order.
fn opened_views(app: &TestApp) -> Vec<Value> {
    app.slack
        .api_calls("views.open")
        .into_iter()
        .filter(|m| m.delivered())
        .map(|m| m.body["view"].clone())
        .collect()
}

/// The input blocks of a view, by `block_id`.
fn inputs(view: &Value) -> Vec<(String, Value)> {
    view["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["type"] == "input")
        .map(|b| {
            (
                b["block_id"].as_str().unwrap_or_default().to_owned(),
                b.clone(),
            )
        })
        .collect()
}

/// The form body Slack posts when `user` submits `view` with `values` typed or chosen (by
/// parameter name); other inputs keep what the view filled in.
fn submission(view: &Value, user: &str, values: &[(&str, &str)]) -> String {
    let mut state = serde_json::Map::new();
    for (block_id, block) in inputs(view) {
        let element = &block["element"];
        let name = block_id.trim_start_matches("param:");
        let chosen = values.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        let value = match element["type"].as_str() {
            Some("static_select") => {
                let selected = chosen
                    .map(|v| json!({"text": {"type": "plain_text", "text": v}, "value": v}))
                    .unwrap_or_else(|| element["initial_option"].clone());
                json!({"type": "static_select", "selected_option": selected})
            }
            _ => {
                let value = chosen
                    .map(|v| json!(v))
                    .unwrap_or_else(|| element["initial_value"].clone());
                json!({"type": "plain_text_input", "value": value})
            }
        };
        state.insert(block_id, json!({ "value": value }));
    }
    let payload = json!({
        "type": "view_submission",
        "team": {"id": "T0TEST", "domain": "test"},
        "user": {"id": user, "username": "alice", "name": "alice", "team_id": "T0TEST"},
        "api_app_id": "A0TEST",
        "token": "unused",
        "trigger_id": "9.9.9",
        "view": {
            "id": "V1",
            "type": "modal",
            "callback_id": view["callback_id"],
            "private_metadata": view["private_metadata"],
            "blocks": view["blocks"],
            "state": {"values": state},
        },
        "enterprise": null,
        "is_enterprise_install": false,
    });
    form_payload(&payload)
}

fn form_payload(payload: &Value) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &payload.to_string())
        .finish()
}

async fn interact(app: &TestApp, body: String, timestamp: i64) -> (Answer, Duration) {
    let url = format!("{}/slack/interactions", app.ingress_url);
    post(app, &url, body, timestamp, SIGNING_SECRET).await
}

#[tokio::test]
async fn missing_values_open_a_form_whose_submission_is_checked_and_queued_once() {
    let app = bot_app().await;
    let trigger = app.slack.trigger_id();
    let (answer, took) = command_with(
        &app,
        &app.ingress_url,
        &trigger,
        ALICE,
        OPS,
        "deploy service=web",
    )
    .await;
    assert!(took < SLACK_PATIENCE, "answered after {took:?}");
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.response_type(), "ephemeral", "{answer:?}");
    let views = opened_views(&app);
    assert_eq!(views.len(), 1, "one form opened: {views:#?}");
    let view = &views[0];
    // A select for each parameter with choices, the value already typed filled in.
    let fields = inputs(view);
    let ids: Vec<&str> = fields.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["param:service", "param:env"]);
    assert_eq!(fields[0].1["element"]["type"], "static_select");
    assert_eq!(fields[0].1["element"]["initial_option"]["value"], "web");
    assert_eq!(fields[1].1["optional"], false);
    let meta: Value =
        serde_json::from_str(view["private_metadata"].as_str().unwrap_or_default()).unwrap();
    assert_eq!(meta["runbook"], "deploy");
    assert_eq!(meta["channel_id"], OPS);
    assert!(
        app.peek_jobs().await.is_empty(),
        "nothing queued before the form is sent"
    );

    let body = submission(view, ALICE, &[("env", "prod")]);
    let ts = now();
    let (answer, took) = interact(&app, body.clone(), ts).await;
    assert!(took < SLACK_PATIENCE, "answered after {took:?}");
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body, "", "an empty 200 closes the modal");
    // The same signed submission again (Slack retrying): answered alike, not queued twice.
    let (again, _) = interact(&app, body.clone(), ts).await;
    assert_eq!((again.status, again.body.as_str()), (200, ""), "{again:?}");
    // The same form sent again by the user (its answer came late, so Slack kept it open): a
    // new signed request, the same job.
    let (resent, _) = interact(&app, body, ts + 1).await;
    assert_eq!(
        (resent.status, resent.body.as_str()),
        (200, ""),
        "{resent:?}"
    );

    let jobs = app.take_jobs().await;
    assert_eq!(jobs.len(), 1, "queued exactly once: {jobs:#?}");
    let job = &jobs[0];
    assert_eq!(job.runbook, "deploy");
    assert_eq!(job.params.get("service").map(String::as_str), Some("web"));
    assert_eq!(job.params.get("env").map(String::as_str), Some("prod"));
    assert_eq!(
        (job.user_id.as_str(), job.channel_id.as_str()),
        (ALICE, OPS)
    );
    assert!(
        job.response_url.is_none(),
        "a form's job has no response_url"
    );
    let events = app.audit_events(1).await;
    assert!(
        events.iter().any(|e| matches!(e,
            AuditEvent::Accepted { runbook, user_id, channel_id, .. }
                if runbook == "deploy" && user_id == ALICE && channel_id == OPS)),
        "{events:#?}"
    );
    app.finish().await;
}

#[tokio::test]
async fn a_forms_job_is_filed_under_the_day_the_form_was_opened() {
    // A form sent again after midnight UTC must name the same record as the first time, or two
    // runners could each claim one. The form carries the day its command came.
    let app = bot_app().await;
    let opened_at = now();
    let view = open_form(&app, "deploy service=web").await;
    let mut meta: Value =
        serde_json::from_str(view["private_metadata"].as_str().unwrap_or_default()).unwrap();
    let today = time::OffsetDateTime::from_unix_timestamp(opened_at)
        .unwrap()
        .date();
    assert_eq!(meta["record_day"], today.to_string(), "{meta}");

    // The same form as if opened the day before: its job is filed under that day.
    let day_before = today.previous_day().unwrap();
    meta["record_day"] = json!(day_before.to_string());
    let mut opened_yesterday = view.clone();
    opened_yesterday["private_metadata"] = json!(meta.to_string());
    let body = submission(&opened_yesterday, ALICE, &[("env", "prod")]);
    let (answer, _) = interact(&app, body, now()).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (200, ""),
        "{answer:?}"
    );
    let jobs = app.take_jobs().await;
    assert_eq!(jobs.len(), 1, "{jobs:#?}");
    assert_eq!(jobs[0].record_day, Some(day_before));
    app.finish().await;
}

#[tokio::test]
async fn a_bad_value_is_shown_next_to_its_field_and_nothing_is_queued() {
    let app = bot_app().await;
    let view = open_form(&app, "scale --form").await;
    // The fixed value is shown, not editable; the int's range is the hint.
    let ids: Vec<String> = inputs(&view).into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, ["param:count"]);
    assert!(view.to_string().contains("`group` = `rg-prod`"), "{view}");
    assert!(view.to_string().contains("from 1 to 10"), "{view}");

    let (answer, _) = interact(&app, submission(&view, ALICE, &[("count", "99")]), now()).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let json = answer.json();
    assert_eq!(json["response_action"], "errors", "{answer:?}");
    let error = json["errors"]["param:count"].as_str().unwrap_or_default();
    assert!(error.contains("give a whole number from 1 to 10"), "{json}");
    // Left empty: the required field is named.
    let (answer, _) = interact(&app, submission(&view, ALICE, &[("count", "")]), now()).await;
    let error = answer.json()["errors"]["param:count"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(error, "Required: give a value.", "{answer:?}");
    assert!(
        app.peek_jobs().await.is_empty(),
        "a refused form was queued"
    );
    app.finish().await;
}

/// Twenty free-text fields: filled to Slack's 3,000 characters each, more than a queued job
/// holds.
const NOTES: &str = r#"
[runbooks.notes]
description = "Takes notes"
executor = "local"
target = "echo.sh"
params = [
  { name = "n01" }, { name = "n02" }, { name = "n03" }, { name = "n04" }, { name = "n05" },
  { name = "n06" }, { name = "n07" }, { name = "n08" }, { name = "n09" }, { name = "n10" },
  { name = "n11" }, { name = "n12" }, { name = "n13" }, { name = "n14" }, { name = "n15" },
  { name = "n16" }, { name = "n17" }, { name = "n18" }, { name = "n19" }, { name = "n20" },
]
allow = { users = ["UALICE"] }
"#;

#[tokio::test]
async fn values_too_long_to_queue_are_refused_under_the_longest_field() {
    let app = TestApp::spawn_opts(Options {
        bot: true,
        extra_runbooks: NOTES,
        ..Options::default()
    })
    .await;
    let view = open_form(&app, "notes --form").await;
    let full = "é".repeat(3000);
    let longest = "ü".repeat(3000) + "!";
    let mut values: Vec<(String, &str)> = (1..=19)
        .map(|n| (format!("n{n:02}"), full.as_str()))
        .collect();
    values.push(("n20".to_owned(), longest.as_str()));
    let values: Vec<(&str, &str)> = values.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    let (answer, _) = interact(&app, submission(&view, ALICE, &values), now()).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let json = answer.json();
    assert_eq!(json["response_action"], "errors", "{json}");
    let error = json["errors"]["param:n20"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("Too long: the form's values make a job of "),
        "{json}"
    );
    assert!(error.contains("at most 64 KB"), "{error}");
    // Fewer values fit: the same form is queued.
    let (answer, _) = interact(&app, submission(&view, ALICE, &values[..3]), now()).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(app.take_jobs().await.len(), 1, "queued once it fits");
    app.finish().await;
}

#[tokio::test]
async fn a_submission_is_authorized_like_a_command_from_its_channel() {
    let app = bot_app().await;
    let trigger = app.slack.trigger_id();
    command_with(&app, &app.ingress_url, &trigger, ALICE, OPS, "deploy").await;
    let view = opened_views(&app).pop().expect("a form opened");
    // Someone else sends the form (or the channel is one deploy may not run from): refused.
    let body = submission(
        &view,
        chatops_e2e::app::BOB,
        &[("service", "web"), ("env", "dev")],
    );
    let (answer, _) = interact(&app, body, now()).await;
    assert_eq!(answer.json()["response_action"], "update", "{answer:?}");
    assert!(answer.body.contains("not allowed to run"), "{answer:?}");
    let meta = json!({"runbook": "deploy", "channel_id": RANDOM, "command": "/runbook"});
    let mut moved = view.clone();
    moved["private_metadata"] = json!(meta.to_string());
    let body = submission(&moved, ALICE, &[("service", "web"), ("env", "dev")]);
    let (answer, _) = interact(&app, body, now()).await;
    assert!(
        answer.body.contains("cannot be run from this channel"),
        "{answer:?}"
    );
    assert!(
        app.peek_jobs().await.is_empty(),
        "a refused form was queued"
    );
    app.finish().await;
}

#[tokio::test]
async fn a_forged_interaction_is_refused_and_nothing_is_queued() {
    let app = bot_app().await;
    let trigger = app.slack.trigger_id();
    command_with(&app, &app.ingress_url, &trigger, ALICE, OPS, "echo --form").await;
    let view = opened_views(&app).pop().expect("a form opened");
    let body = submission(&view, ALICE, &[("first", "hi")]);
    let url = format!("{}/slack/interactions", app.ingress_url);
    let (answer, _) = post(&app, &url, body.clone(), now(), "not-the-secret").await;
    assert_eq!(answer.status, 401, "{answer:?}");
    // Signed, but outside Slack's 5-minute window: a replay of an old request.
    let (answer, _) = post(&app, &url, body.clone(), now() - 600, SIGNING_SECRET).await;
    assert_eq!(answer.status, 401, "{answer:?}");
    let unsigned = app
        .client
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("ingress answers");
    assert_eq!(unsigned.status(), 401);
    assert!(
        app.peek_jobs().await.is_empty(),
        "a forged interaction was queued"
    );
    app.finish().await;
}

#[tokio::test]
async fn other_interaction_types_are_answered_without_doing_anything() {
    let app = bot_app().await;
    let body =
        form_payload(&json!({"type": "block_actions", "user": {"id": ALICE}, "actions": []}));
    let (answer, _) = interact(&app, body, now()).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(
        answer.body.contains("does not handle `block_actions`"),
        "{answer:?}"
    );
    let (answer, _) = interact(&app, "payload=%7Bnot+json".to_owned(), now()).await;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert!(app.peek_jobs().await.is_empty());
    app.finish().await;
}

#[tokio::test]
async fn a_trigger_slack_no_longer_takes_falls_back_to_the_usage_text() {
    let app = bot_app().await;
    let trigger = app.slack.trigger_id();
    let (first, _) = command_with(&app, &app.ingress_url, &trigger, ALICE, OPS, "deploy").await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(opened_views(&app).len(), 1);
    // The same trigger again (used), and one Slack never issued: the usage, as without a bot.
    for trigger in [trigger.as_str(), "1.2.3"] {
        let (answer, took) = command_with(
            &app,
            &app.ingress_url,
            trigger,
            ALICE,
            OPS,
            "deploy service=web",
        )
        .await;
        assert!(took < SLACK_PATIENCE, "answered after {took:?}");
        assert_eq!(answer.response_type(), "ephemeral", "{answer:?}");
        let text = answer.text();
        assert!(text.contains("`env` is required"), "{text}");
        assert!(text.contains("Usage: `/runbook deploy"), "{text}");
    }
    // Asked for with --form: said so, with the usage.
    let (answer, _) =
        command_with(&app, &app.ingress_url, "1.2.3", ALICE, OPS, "deploy --form").await;
    let text = answer.text();
    assert!(text.contains("Slack did not open the form"), "{text}");
    assert!(text.contains("/runbook deploy"), "{text}");
    let calls = app.slack.api_calls("views.open");
    assert_eq!(
        calls.len(),
        4,
        "each command tried views.open once: {calls:#?}"
    );
    assert_eq!(
        calls
            .iter()
            .filter(|m| m.body.is_object() && m.status == 200)
            .count(),
        4
    );
    assert!(app.peek_jobs().await.is_empty());
    app.finish().await;
}

#[tokio::test]
async fn without_a_bot_token_missing_values_get_the_usage_and_form_asks_are_told_why_not() {
    let app = TestApp::spawn().await;
    let (answer, _) = command_with(&app, &app.ingress_url, "1.2.3", ALICE, OPS, "deploy").await;
    assert!(
        answer.text().contains("Usage: `/runbook deploy"),
        "{answer:?}"
    );
    let (answer, _) =
        command_with(&app, &app.ingress_url, "1.2.3", ALICE, OPS, "deploy --form").await;
    assert_eq!(answer.response_type(), "ephemeral", "{answer:?}");
    assert!(
        answer.text().contains("Forms are not available here"),
        "{answer:?}"
    );
    assert!(app.slack.api_calls("views.open").is_empty());
    assert!(app.peek_jobs().await.is_empty());
    app.finish().await;
}

#[tokio::test]
async fn with_a_bot_token_a_queued_command_is_acknowledged_to_the_caller_only() {
    let app = bot_app().await;
    let answer = app.command(ALICE, OPS, "echo hello").await;
    assert_eq!(answer.response_type(), "ephemeral", "{answer:?}");
    assert!(answer.text().contains("Queued *echo*"), "{answer:?}");
    let jobs = app.take_jobs().await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(TestApp::short_id(&answer), jobs[0].short_id());
    assert!(
        jobs[0].response_url.is_some(),
        "a typed command keeps its response_url"
    );
    app.finish().await;
}

#[tokio::test]
async fn a_slow_views_open_still_leaves_an_answer_within_3s() {
    let app = bot_app().await;
    app.slack.delay_method("views.open", Duration::from_secs(5));
    let trigger = app.slack.trigger_id();
    let (answer, took) = command_with(
        &app,
        &app.ingress_url,
        &trigger,
        ALICE,
        OPS,
        "deploy service=web",
    )
    .await;
    assert!(took < SLACK_PATIENCE, "answered after {took:?}");
    assert!(
        answer.text().contains("Usage: `/runbook deploy"),
        "{answer:?}"
    );
    app.finish().await;
}

#[tokio::test]
async fn a_slow_queue_still_leaves_an_answer_within_3s_for_commands_and_forms() {
    let app = bot_app().await;
    // A second ingress on the same queue, seen through a queue that takes 4 s per message.
    let slow: Arc<dyn JobQueue> =
        Arc::new(ShapedQueue::over(app.queue.clone()).slow_sends(Duration::from_secs(4)));
    let audit_store = app.blob_store("audit-slow");
    audit_store
        .ensure_container()
        .await
        .expect("audit container");
    let (audit, _writer) = AuditLog::new(audit_store, "slow".to_owned());
    let state = AppState::new(
        Verifier::new(vec![Secret::new(SIGNING_SECRET)]),
        (*app.catalog).clone(),
        slow,
        app.job_keys.current().clone(),
        app.records(),
        audit,
    )
    .with_slack_api(Some(app.slack.api_client()));
    let ingress = Application::with_state("127.0.0.1:0".parse().unwrap(), state)
        .await
        .expect("bind");
    let url = format!("http://{}", ingress.local_addr().unwrap());
    let serving = tokio::spawn(ingress.run_until_stopped(std::future::pending()));

    let (answer, took) = command_with(&app, &url, "1.2.3", ALICE, OPS, "echo hello").await;
    assert!(took < SLACK_PATIENCE, "answered after {took:?}");
    assert_eq!(answer.response_type(), "ephemeral", "{answer:?}");
    assert!(answer.text().contains("Could not confirm"), "{answer:?}");

    // A form opened with Slack slow too, then submitted to the slow queue.
    app.slack
        .delay_method("views.open", Duration::from_millis(1500));
    let trigger = app.slack.trigger_id();
    let (answer, took) = command_with(&app, &url, &trigger, ALICE, OPS, "echo --form").await;
    assert!(took < SLACK_PATIENCE, "answered after {took:?}");
    assert_eq!(answer.status, 200, "{answer:?}");
    let view = opened_views(&app).pop().expect("a form opened");
    let body = submission(&view, ALICE, &[("first", "hi")]);
    let (answer, took) = post(
        &app,
        &format!("{url}/slack/interactions"),
        body,
        now(),
        SIGNING_SECRET,
    )
    .await;
    assert!(took < SLACK_PATIENCE, "answered after {took:?}");
    // The form stays open, with what was typed, to be sent again.
    let json = answer.json();
    assert_eq!(json["response_action"], "errors", "{answer:?}");
    let error = json["errors"]["param:first"].as_str().unwrap_or_default();
    assert!(error.starts_with("Not confirmed in time"), "{json}");

    // A command whose body comes slowly (1.5 s after its headers): the 3 s count from its
    // arrival, not from when its body was read.
    let addr = url.trim_start_matches("http://");
    let body = app.form(ALICE, OPS, "echo slowly");
    let (status, took) =
        chatops_e2e::app::post_slowly(addr, "/slack/commands", &body, Duration::from_millis(1500))
            .await;
    assert!(took < SLACK_PATIENCE, "answered after {took:?}");
    assert_eq!(status, 200);

    serving.abort();
    assert!(
        app.peek_jobs().await.is_empty(),
        "a send given up on was queued"
    );
    // Run pressed again, twice, the queue fast again: one job.
    for _ in 0..2 {
        let body = submission(&view, ALICE, &[("first", "hi")]);
        let (answer, _) = interact(&app, body, now()).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        assert!(answer.body.is_empty(), "the form closes: {answer:?}");
    }
    assert_eq!(app.take_jobs().await.len(), 1, "one job");
    app.finish().await;
}
