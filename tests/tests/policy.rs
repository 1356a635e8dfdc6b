//! Who may run what, with Slack user groups: `allow.usergroups` and per-group parameter values
//! (`only`), looked up through the Slack double's `usergroups.users.list`, refused when Slack
//! cannot be asked (fail closed), and checked again by the runner.

#![allow(clippy::expect_used)]

use chatops_e2e::app::{ALICE, BOB, OPS, Options, RANDOM, TestApp};
use chatops_e2e::shaped_queue::ShapedQueue;
use chatops_runner::worker::Step;
use chatops_shared::audit::AuditEvent;
use chatops_shared::catalog::GroupAnswer;
use chatops_shared::job::{JobKind, JobMessage, job_id_from_signature};
use chatops_shared::membership::Membership;
use chatops_shared::workspaces::Workspaces;
use std::sync::Arc;
use std::time::Duration;

const ONCALL: &str = "S0ONCALL";

const RUNBOOKS: &str = r#"
[runbooks.page]
description = "For the on-call group"
executor = "local"
target = "echo.sh"
allow = { users = ["UALICE"], usergroups = ["S0ONCALL"] }

[runbooks.deploy-app]
description = "Deploys; prod only for the on-call group"
executor = "local"
target = "echo.sh"
params = [
  { name = "env", required = true, choices = ["dev", "prod"], only = { prod = { usergroups = ["S0ONCALL"] } } },
]
allow = { users = ["UALICE", "UBOB"] }

[runbooks.hold]
description = "Appends its job id to a file, after a pause; the on-call group may stop it"
executor = "local"
target = "record.sh"
params = [ { name = "n", required = true }, { name = "pause", default = "0" } ]
allow = { users = ["UALICE"] }
stop_allow = { usergroups = ["S0ONCALL"], channels = ["COPS"] }
"#;

/// With a bot token the ingress acknowledges a queued job to the caller only (the runner's job
/// card is the channel's message).
fn assert_queued(answer: &chatops_e2e::app::Answer) {
    assert_eq!(answer.response_type(), "ephemeral", "{answer:?}");
    assert!(answer.text().contains("Queued *"), "{answer:?}");
}

async fn spawn(bot: bool) -> TestApp {
    TestApp::spawn_opts(Options {
        bot,
        extra_runbooks: RUNBOOKS,
        ..Default::default()
    })
    .await
}

const LOOKUP: &str = "usergroups.users.list";

/// The options of the select for `param` in the last form opened.
fn form_options(app: &TestApp, param: &str) -> (Vec<String>, String) {
    let calls = app.slack.api_calls("views.open");
    let view = &calls.last().expect("a form was opened").body["view"];
    let block = view["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|b| b["block_id"] == format!("param:{param}"))
        .expect("an input for the parameter")
        .clone();
    let options = block["element"]["options"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| o["value"].as_str().unwrap_or_default().to_owned())
        .collect();
    (
        options,
        block["hint"]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

#[tokio::test]
async fn a_form_lists_only_the_values_the_caller_may_choose() {
    let app = spawn(true).await;
    app.slack.set_usergroup(ONCALL, &[BOB]);
    // Slack cannot say who is on call: the form leaves `prod` out, and says why.
    app.slack
        .fail_method_next(LOOKUP, 1, 200, r#"{"ok":false,"error":"missing_scope"}"#);
    let answer = app.command_with_trigger(BOB, OPS, "deploy-app").await;
    assert!(answer.text().contains("Fill in the form"), "{answer:?}");
    let (options, hint) = form_options(&app, "env");
    assert_eq!(options, ["dev"], "on call, but Slack could not say");
    assert!(
        hint.contains("Slack could not say which user groups you are in"),
        "{hint}"
    );

    let answer = app.command_with_trigger(ALICE, OPS, "deploy-app").await;
    assert!(answer.text().contains("Fill in the form"), "{answer:?}");
    let (options, hint) = form_options(&app, "env");
    assert_eq!(options, ["dev"], "Alice is not on call");
    assert!(
        hint.contains("values you may not choose are not listed"),
        "{hint}"
    );

    let answer = app.command_with_trigger(BOB, OPS, "deploy-app").await;
    assert!(answer.text().contains("Fill in the form"), "{answer:?}");
    let (options, hint) = form_options(&app, "env");
    assert_eq!(options, ["dev", "prod"], "Bob is on call");
    assert!(!hint.contains("not listed"), "{hint}");
    assert!(app.peek_jobs().await.is_empty());
    app.finish().await;
}

#[tokio::test]
async fn members_of_a_listed_group_may_run_it_and_others_are_told_which_rule_denied_them() {
    let app = spawn(true).await;
    app.slack.set_usergroup(ONCALL, &[BOB]);

    // Alice is listed by ID: no lookup.
    let answer = app.command(ALICE, OPS, "page").await;
    assert_queued(&answer);
    assert!(app.slack.api_calls(LOOKUP).is_empty(), "asked about Alice");

    let answer = app.command(BOB, OPS, "page").await;
    assert_queued(&answer);
    assert_eq!(app.slack.api_calls(LOOKUP).len(), 1);
    assert_eq!(app.take_jobs().await.len(), 2);

    let answer = app.command("UCAROL", OPS, "page").await;
    assert_eq!(answer.response_type(), "ephemeral", "{answer:?}");
    assert!(
        answer.text().contains("You are not allowed to run `page`"),
        "{answer:?}"
    );
    assert!(
        app.peek_jobs().await.is_empty(),
        "a denied command was queued"
    );
    // The member list came from the cache.
    assert_eq!(app.slack.api_calls(LOOKUP).len(), 1);
    let events = app.audit_events(3).await;
    assert_eq!(
        events.last(),
        Some(&AuditEvent::Denied {
            user_id: "UCAROL".into(),
            channel_id: OPS.into(),
            runbook: "page".into(),
            rule: "allow.users".into(),
        }),
        "{events:?}"
    );
    app.finish().await;
}

#[tokio::test]
async fn when_slack_cannot_say_the_command_is_refused_naming_the_problem() {
    let app = spawn(true).await;
    app.slack.set_usergroup(ONCALL, &[BOB]);
    app.slack
        .fail_method_next(LOOKUP, 1, 200, r#"{"ok":false,"error":"missing_scope"}"#);
    let answer = app.command(BOB, OPS, "page").await;
    assert_eq!(answer.response_type(), "ephemeral", "{answer:?}");
    let text = answer.text();
    assert!(
        text.contains("your user groups could not be checked"),
        "{text}"
    );
    assert!(text.contains("missing_scope"), "{text}");
    assert!(app.peek_jobs().await.is_empty(), "queued without an answer");
    let events = app.audit_events(1).await;
    assert_eq!(
        events.last(),
        Some(&AuditEvent::Denied {
            user_id: BOB.into(),
            channel_id: OPS.into(),
            runbook: "page".into(),
            rule: "usergroup_lookup".into(),
        }),
        "{events:?}"
    );

    // Rate-limited past the answer's deadline: refused in time, not allowed.
    app.slack.set_retry_after(30);
    app.slack
        .fail_method_next(LOOKUP, 1, 429, r#"{"ok":false,"error":"ratelimited"}"#);
    let started = std::time::Instant::now();
    let answer = app.command(BOB, OPS, "page").await;
    assert!(started.elapsed() < Duration::from_millis(2500), "too slow");
    assert!(
        answer
            .text()
            .contains("your user groups could not be checked"),
        "{answer:?}"
    );
    assert!(app.peek_jobs().await.is_empty());
    app.finish().await;
}

#[tokio::test]
async fn without_a_bot_token_group_rules_refuse_and_say_so() {
    let app = spawn(false).await;
    app.slack.set_usergroup(ONCALL, &[BOB]);
    let text = app.command(BOB, OPS, "page").await.text();
    assert!(text.contains("SLACK_BOT_TOKEN"), "{text}");
    assert!(app.peek_jobs().await.is_empty());
    // Listed by ID: unaffected.
    let answer = app.command(ALICE, OPS, "page").await;
    assert_eq!(answer.response_type(), "in_channel", "{answer:?}");
    assert_eq!(app.take_jobs().await.len(), 1);
    app.finish().await;
}

#[tokio::test]
async fn a_value_limited_to_a_group_is_refused_to_others() {
    let app = spawn(true).await;
    app.slack.set_usergroup(ONCALL, &[BOB]);
    let answer = app.command(ALICE, OPS, "deploy-app env=prod").await;
    assert_eq!(answer.response_type(), "ephemeral", "{answer:?}");
    assert!(
        answer
            .text()
            .contains("You may not run `deploy-app` with env=prod"),
        "{answer:?}"
    );
    assert!(app.peek_jobs().await.is_empty());
    let answer = app.command(ALICE, OPS, "deploy-app env=dev").await;
    assert_queued(&answer);
    let answer = app.command(BOB, OPS, "deploy-app env=prod").await;
    assert_queued(&answer);
    assert_eq!(app.take_jobs().await.len(), 2);
    let events = app.audit_events(3).await;
    assert!(
        events.contains(&AuditEvent::Denied {
            user_id: ALICE.into(),
            channel_id: OPS.into(),
            runbook: "deploy-app".into(),
            rule: "params.only".into(),
        }),
        "{events:?}"
    );
    app.finish().await;
}

#[tokio::test]
async fn the_runner_refuses_a_queued_job_after_the_user_left_the_group() {
    let app = spawn(true).await;
    app.slack.set_usergroup(ONCALL, &[BOB]);
    let page = TestApp::short_id(&app.command(BOB, OPS, "page").await);
    let prod = TestApp::short_id(&app.command(BOB, OPS, "deploy-app env=prod").await);
    // Bob leaves the group while the jobs wait.
    app.slack.set_usergroup(ONCALL, &[]);
    let worker = app.worker().with_membership(Membership::new(
        Some(app.slack.api_client()),
        Duration::ZERO,
    ));
    app.drain(&worker).await;
    let text = app.final_text(&page, "*Refused*").await;
    assert!(text.contains("not allowed to run `page`"), "{text}");
    let text = app.final_text(&prod, "*Refused*").await;
    assert!(text.contains("env=prod"), "{text}");
    assert!(!text.contains("args:"), "nothing ran: {text}");

    // And without an answer from Slack, the runner refuses too.
    app.slack.set_usergroup(ONCALL, &[BOB]);
    let again = TestApp::short_id(&app.command(BOB, OPS, "page").await);
    let worker = app
        .worker()
        .with_membership(Membership::new(None, Duration::ZERO));
    app.drain(&worker).await;
    let text = app.final_text(&again, "*Refused*").await;
    assert!(text.contains("SLACK_BOT_TOKEN"), "{text}");
    app.finish().await;
}

#[tokio::test]
async fn help_shows_what_the_caller_may_run_including_through_groups() {
    let app = spawn(true).await;
    app.slack.set_usergroup(ONCALL, &[BOB]);
    let answer = app.command(BOB, OPS, "help").await;
    assert_eq!(answer.response_type(), "ephemeral", "{answer:?}");
    let help = answer.text();
    assert!(help.contains("• page: For the on-call group"), "{help}");
    let blocks = answer.json()["blocks"].clone();
    assert!(
        blocks[0]["type"] == "section" && blocks.as_array().is_some_and(|b| b.len() > 2),
        "Block Kit sections: {blocks}"
    );
    let help = app.command("UCAROL", OPS, "help").await.text();
    assert!(!help.contains("page"), "{help}");

    // One runbook: its parameters, who may give which value, and an example.
    let help = app.command(BOB, OPS, "help deploy-app").await.text();
    assert!(
        help.contains("env=prod only for user group S0ONCALL"),
        "{help}"
    );
    assert!(
        help.contains("Example: `/runbook deploy-app env=dev`"),
        "{help}"
    );
    // Never for a runbook the caller may not see, nor as a suggestion.
    for text in ["help page", "pag"] {
        let said = app.command("UCAROL", OPS, text).await.text();
        assert!(said.contains("There is no runbook"), "{text}: {said}");
        assert!(!said.contains("Did you mean"), "{text}: {said}");
    }

    // Slack down: only what needs no lookup, and the caller is told.
    let app2 = spawn(true).await;
    app2.slack
        .fail_method_next(LOOKUP, 1, 200, r#"{"ok":false,"error":"fatal_error"}"#);
    let help = app2.command(BOB, OPS, "help").await.text();
    assert!(!help.contains("• page"), "{help}");
    assert!(help.contains("• deploy-app"), "{help}");
    assert!(
        help.contains("your user groups could not be checked"),
        "{help}"
    );
    app2.finish().await;
    app.finish().await;
}

/// A `kind: stop` message for `target`, from `by`, as the ingress would queue it.
fn stop_message(app: &TestApp, target: &JobMessage, by: &str, signature: &str) -> JobMessage {
    JobMessage {
        job_id: job_id_from_signature(signature),
        kind: JobKind::Stop,
        target: Some(target.job_id),
        user_id: by.into(),
        response_url: Some(chatops_shared::secret::Secret::new(
            app.slack.response_url(),
        )),
        requested_at: time::OffsetDateTime::now_utc(),
        record_day: None,
        ..target.clone()
    }
}

/// Bob is in the on-call group; Alice's `hold` job runs on a runner of its own (that asks
/// Slack for group members on every check): its short id and that runner's task.
async fn alice_runs_hold_and_bob_is_on_call(
    app: &TestApp,
) -> (
    String,
    tokio::task::JoinHandle<Result<Step, chatops_shared::queue::QueueError>>,
) {
    app.slack.set_usergroup(ONCALL, &[BOB]);
    let id = TestApp::short_id(&app.command(ALICE, OPS, "hold n=1 pause=30").await);
    let membership = Membership::new(Some(app.slack.api_client()), Duration::ZERO);
    let holder = app.worker().with_membership(membership);
    let running = tokio::spawn(async move { holder.process_next().await });
    app.wait_for_script_start().await;
    (id, running)
}

#[tokio::test]
async fn members_of_a_stop_allow_group_may_stop_a_job_and_the_runner_checks_again() {
    let app = spawn(true).await;
    let (id, running) = alice_runs_hold_and_bob_is_on_call(&app).await;
    let membership = || Membership::new(Some(app.slack.api_client()), Duration::ZERO);

    // Slack cannot say: refused, naming the problem, not "you may not".
    app.slack
        .fail_method_next(LOOKUP, 1, 200, r#"{"ok":false,"error":"missing_scope"}"#);
    let answer = app.command("UCAROL", OPS, &format!("stop {id}")).await;
    assert_eq!(answer.response_type(), "ephemeral", "{answer:?}");
    let text = answer.text();
    assert!(
        text.contains("your user groups could not be checked") && text.contains("missing_scope"),
        "{text}"
    );
    let answer = app.command("UCAROL", OPS, &format!("stop {id}")).await;
    assert_eq!(answer.response_type(), "ephemeral", "{answer:?}");
    assert!(
        answer.text().starts_with("You may not stop job"),
        "{answer:?}"
    );
    let answer = app.command(BOB, OPS, &format!("stop {id}")).await;
    assert_eq!(answer.response_type(), "in_channel", "{answer:?}");
    let stopper = app.worker().with_membership(membership());
    assert_eq!(stopper.process_next().await, Ok(Step::Processed));
    let text = app.final_text(&id, "*Stopped*").await;
    assert!(text.contains(&format!("Stopped by <@{BOB}>")), "{text}");
    let _ = running.await;
    app.finish().await;
}

#[tokio::test]
async fn a_stop_from_a_channel_stop_allow_does_not_name_is_refused_for_that_not_for_a_lookup() {
    let app = spawn(true).await;
    app.slack.set_usergroup(ONCALL, &[BOB]);
    // Alice's job in #random, where its stoppers may not stop it (`channels = ["COPS"]`).
    let id = TestApp::short_id(&app.command(ALICE, RANDOM, "hold n=1 pause=30").await);
    let holder = app.worker();
    let running = tokio::spawn(async move { holder.process_next().await });
    app.wait_for_script_start().await;
    app.slack
        .fail_method_next(LOOKUP, 1, 200, r#"{"ok":false,"error":"missing_scope"}"#);
    let answer = app.command(BOB, RANDOM, &format!("stop {id}")).await;
    let text = answer.text();
    assert!(text.starts_with("You may not stop job"), "{text}");
    assert!(!text.contains("could not be checked"), "{text}");
    assert!(app.slack.api_calls(LOOKUP).is_empty(), "no lookup was made");
    // Alice stops her own job.
    let answer = app.command(ALICE, RANDOM, &format!("stop {id}")).await;
    assert_eq!(answer.response_type(), "in_channel", "{answer:?}");
    assert_eq!(app.worker().process_next().await, Ok(Step::Processed));
    app.final_text(&id, "*Stopped*").await;
    let _ = running.await;
    app.finish().await;
}

#[tokio::test]
async fn a_stop_whose_group_lookup_fails_at_the_runner_is_tried_again_not_refused() {
    let app = spawn(true).await;
    let (id, running) = alice_runs_hold_and_bob_is_on_call(&app).await;
    let answer = app.command(BOB, OPS, &format!("stop {id}")).await;
    assert_eq!(answer.response_type(), "in_channel", "{answer:?}");
    // Slack cannot answer the runner's own check, once (as when a scope was being re-granted).
    app.slack
        .fail_method_next(LOOKUP, 1, 200, r#"{"ok":false,"error":"missing_scope"}"#);
    let mut settings = app.worker_settings();
    settings.visibility = Duration::from_secs(1);
    let stopper = app.worker_with(settings).with_membership(Membership::new(
        Some(app.slack.api_client()),
        Duration::ZERO,
    ));
    app.process_until(&stopper, Duration::from_secs(30), "never stopped", || {
        app.slack_count(&id, "*Stopped*") > 0
    })
    .await;
    let text = app.final_text(&id, "*Stopped*").await;
    assert!(text.contains(&format!("Stopped by <@{BOB}>")), "{text}");
    let refused = app
        .slack
        .messages()
        .iter()
        .filter(|m| m.text().contains("you may not stop"))
        .count();
    assert_eq!(refused, 0, "Bob was never told he may not");
    let _ = running.await;
    app.finish().await;
}

#[tokio::test]
async fn a_stop_whose_checks_outlast_its_visibility_is_handled_by_one_runner() {
    let app = spawn(true).await;
    let (id, running) = alice_runs_hold_and_bob_is_on_call(&app).await;
    let membership = || Membership::new(Some(app.slack.api_client()), Duration::ZERO);
    let answer = app.command(BOB, OPS, &format!("stop {id}")).await;
    assert_eq!(answer.response_type(), "in_channel", "{answer:?}");

    // The runner's user-group check takes longer than the stop message's visibility.
    app.slack.delay_method(LOOKUP, Duration::from_millis(2500));
    let queue = Arc::new(ShapedQueue::over(app.runner_queue()));
    let mut settings = app.worker_settings();
    settings.visibility = Duration::from_secs(1);
    let stoppers = (0..2)
        .map(|_| {
            app.worker_on(queue.clone(), settings.clone())
                .with_membership(membership())
        })
        .collect();
    let stoppers = app.spawn_workers(stoppers);
    let text = app.final_text(&id, "*Stopped*").await;
    assert!(text.contains(&format!("Stopped by <@{BOB}>")), "{text}");
    let _ = running.await;
    stoppers.stop().await;
    assert_eq!(queue.deliveries(), [1], "taken by one runner, once");
    app.finish().await;
}

#[tokio::test]
async fn the_runner_refuses_a_stop_from_a_workspace_not_listed() {
    let app = spawn(true).await;
    let id = TestApp::short_id(&app.command(ALICE, OPS, "hold n=1 pause=3").await);
    let job = app.peek_jobs().await.remove(0);
    let holder = app.worker();
    let running = tokio::spawn(async move { holder.process_next().await });
    app.wait_for_script_start().await;

    // Alice may stop her own job, but her workspace (T0TEST) is not this runner's.
    let stop = stop_message(&app, &job, ALICE, "v0=stop-from-elsewhere");
    app.put_raw(&app.queue_text(&stop)).await;
    let mut settings = app.worker_settings();
    settings.workspaces = Workspaces::new(Some(vec!["T0OTHER"]), None::<Vec<String>>);
    assert_eq!(
        app.worker_with(settings).process_next().await,
        Ok(Step::Processed)
    );
    let notice = app
        .final_text(&stop.short_id(), "is not allowed to use this app")
        .await;
    assert!(notice.contains("T0TEST"), "{notice}");
    let _ = running.await;
    app.final_text(&id, "*Completed*").await;
    app.finish().await;
}

#[tokio::test]
async fn lookups_of_one_group_at_once_ask_slack_once() {
    let app = spawn(true).await;
    app.slack.set_usergroup(ONCALL, &[BOB]);
    app.slack.delay_method(LOOKUP, Duration::from_millis(300));
    let membership = Membership::new(Some(app.slack.api_client()), Duration::from_secs(60));
    let groups = std::collections::BTreeSet::from([ONCALL.to_owned()]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let answers =
        futures_util::future::join_all((0..5).map(|_| membership.resolve(BOB, &groups, deadline)))
            .await;
    assert!(
        answers
            .iter()
            .all(|a| a.answer(ONCALL) == GroupAnswer::Member)
    );
    assert_eq!(
        app.slack.api_calls(LOOKUP).len(),
        1,
        "one call for five lookups"
    );
    app.finish().await;
}

#[tokio::test]
async fn member_lists_are_kept_for_the_ttl_then_asked_again() {
    let app = spawn(true).await;
    app.slack.set_usergroup(ONCALL, &[BOB]);
    let membership = Membership::new(Some(app.slack.api_client()), Duration::from_millis(500));
    let groups = std::collections::BTreeSet::from([ONCALL.to_owned()]);
    let deadline = || tokio::time::Instant::now() + Duration::from_secs(5);
    let asked = membership.resolve(BOB, &groups, deadline()).await;
    assert_eq!(asked.answer(ONCALL), GroupAnswer::Member);
    app.slack.set_usergroup(ONCALL, &[]);
    // Within the TTL: the kept list, no second call.
    let asked = membership.resolve(BOB, &groups, deadline()).await;
    assert_eq!(asked.answer(ONCALL), GroupAnswer::Member);
    assert_eq!(app.slack.api_calls(LOOKUP).len(), 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let asked = membership.resolve(BOB, &groups, deadline()).await;
    assert_eq!(asked.answer(ONCALL), GroupAnswer::NotMember);
    assert_eq!(app.slack.api_calls(LOOKUP).len(), 2);
    // A failed lookup is not kept: the next one asks again.
    app.slack
        .fail_method_next(LOOKUP, 1, 200, r#"{"ok":false,"error":"missing_scope"}"#);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let asked = membership.resolve(BOB, &groups, deadline()).await;
    assert!(
        matches!(asked.answer(ONCALL), GroupAnswer::Unknown(why) if why.contains("missing_scope"))
    );
    let asked = membership.resolve(BOB, &groups, deadline()).await;
    assert_eq!(asked.answer(ONCALL), GroupAnswer::NotMember);
    app.finish().await;
}
