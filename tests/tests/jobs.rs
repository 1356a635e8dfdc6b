//! Jobs end to end: a signed command through the ingress onto a real Azurite queue, taken by a
//! worker (the runner's own code), run by the local executor or by Azure Automation (the ARM
//! test server), and reported to the Slack test server.

// Test code: a failed step should stop the test with its message.
#![allow(clippy::expect_used)]

use chatops_e2e::app::{ALICE, BOB, OPS, TestApp};
use chatops_e2e::arm::Script;
use chatops_e2e::shaped_queue::ShapedQueue;
use chatops_e2e::slack::PathKind;
use chatops_runner::worker::Step;
use chatops_shared::job::{JobMessage, SCHEMA_VERSION, job_id_from_signature};
use chatops_shared::secret::Secret;
use chatops_shared::workspaces::Workspaces;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// Takes the one job message on the queue off it, as a command put it there.
async fn take_job(app: &TestApp) -> JobMessage {
    let taken = app
        .queue
        .receive(1, Duration::from_secs(30))
        .await
        .expect("receive");
    assert_eq!(taken.len(), 1);
    app.queue.delete(&taken[0]).await.expect("delete");
    app.decode(&taken[0].text)
}

#[tokio::test]
async fn local_runbook_runs_with_its_arguments_and_reports_running_then_completed() {
    let app = TestApp::spawn().await;
    let answer = app.command(ALICE, OPS, "echo \"hello world\"").await;
    let id = TestApp::short_id(&answer);
    assert_eq!(app.worker().process_next().await, Ok(Step::Processed));

    let messages = app.wait_for_slack(&id, "*Completed*").await;
    assert_eq!(messages.len(), 2, "running, then completed: {messages:#?}");
    assert!(
        messages[0].text().contains("running"),
        "{}",
        messages[0].text()
    );
    let done = &messages[1];
    assert_eq!(done.kind, PathKind::ResponseUrl);
    assert_eq!(done.body["replace_original"], true);
    assert_eq!(done.body["response_type"], "in_channel");
    let text = done.text();
    // argv: the value given, then the default, in catalog order.
    assert!(text.contains("args: hello world two"), "{text}");
    assert!(
        text.contains("env: CHATOPS_PARAM_FIRST=hello world"),
        "{text}"
    );
    assert!(text.contains("env: CHATOPS_JOB_ID="), "{text}");
    // Scripts run in their own directory.
    assert!(
        text.contains(&format!("env: PWD={}", app.dir.display())),
        "{text}"
    );
    // Nothing else of the runner's environment reaches the script.
    for line in text.lines().filter(|l| l.starts_with("env: ")) {
        let name = line["env: ".len()..].split('=').next().unwrap_or_default();
        assert!(
            ["PATH", "HOME", "LANG", "PWD", "SHLVL", "CHATOPS_JOB_ID"].contains(&name)
                || name.starts_with("CHATOPS_PARAM_"),
            "unexpected variable {name} in the script's environment"
        );
    }
    app.finish().await;
}

#[tokio::test]
async fn a_failing_runbook_reports_failed_with_its_error_output() {
    let app = TestApp::spawn().await;
    let id = TestApp::short_id(&app.command(ALICE, OPS, "fail").await);
    app.drain(&app.worker()).await;
    let messages = app.wait_for_slack(&id, "*Failed*").await;
    let text = messages.last().map(|m| m.text()).unwrap_or_default();
    assert!(text.contains("boom: disk full"), "{text}");
    assert!(text.contains("status 3"), "{text}");
    app.finish().await;
}

#[tokio::test]
async fn a_runbook_over_its_timeout_is_killed_and_reported_timed_out() {
    let app = TestApp::spawn().await;
    let id = TestApp::short_id(&app.command(ALICE, OPS, "slow").await);
    app.drain(&app.worker()).await;
    let messages = app.wait_for_slack(&id, "*TimedOut*").await;
    let text = messages.last().map(|m| m.text()).unwrap_or_default();
    assert!(
        text.contains("sleeping") && !text.contains("woke up"),
        "{text}"
    );
    app.finish().await;
}

#[tokio::test]
async fn automation_runbook_starts_one_job_follows_it_and_reports_its_output() {
    let app = TestApp::spawn().await;
    let answer = app.command(ALICE, OPS, "restart-web prod").await;
    let id = TestApp::short_id(&answer);
    let job_id = app.peek_jobs().await[0].job_id;
    app.drain(&app.worker()).await;
    let messages = app.wait_for_slack(&id, "*Completed*").await;
    assert!(
        messages.iter().any(|m| m.text().contains("running")),
        "{messages:#?}"
    );
    let text = messages.last().map(|m| m.text()).unwrap_or_default();
    assert!(
        text.contains("Restart-WebApp"),
        "the scripted output is shown: {text}"
    );
    assert_eq!(app.arm.put_count(&job_id.to_string()), 1);
    let job = app
        .arm
        .job(&job_id.to_string())
        .expect("job created under the job id");
    assert_eq!(job.runbook, "Restart-WebApp");
    assert_eq!(job.params.get("env").map(String::as_str), Some("prod"));
    assert_eq!(
        job.params.get("count").map(String::as_str),
        Some("1"),
        "default filled in"
    );
    app.finish().await;
}

#[tokio::test]
async fn a_second_message_for_an_automation_job_is_not_started_again() {
    let app = TestApp::spawn().await;
    let answer = app.command(ALICE, OPS, "restart-web dev").await;
    let id = TestApp::short_id(&answer);
    let job = app.peek_jobs().await.remove(0);
    // The same message a second time, as after a runner died before deleting it.
    app.put_raw(&app.queue_text(&job)).await;
    app.drain(&app.worker()).await;
    let finals = app.wait_for_slack(&id, "*Completed*").await;
    assert!(!finals.is_empty());
    assert_eq!(
        app.arm.put_count(&job.job_id.to_string()),
        1,
        "the second message found the job's record: no second start"
    );
    assert_eq!(app.slack_count(&id, "*Completed*"), 1, "reported once");
    assert_eq!(app.arm.jobs().len(), 1, "one job in Azure Automation");
    app.finish().await;
}

#[tokio::test]
async fn azure_automation_refusing_the_job_is_reported_as_failed_with_a_plain_reason() {
    let app = TestApp::spawn().await;
    let id = TestApp::short_id(&app.command(ALICE, OPS, "broken").await);
    app.drain(&app.worker()).await;
    let text = app.final_text(&id, "*Failed*").await;
    assert!(
        text.contains("Azure refused to start the runbook (404: no such runbook")
            && text.contains(&format!("in the runner's log under job {id}")),
        "a plain reason and where to find the details: {text}"
    );
    app.finish().await;
}

#[tokio::test]
async fn arm_throttling_and_server_errors_are_retried() {
    let app = TestApp::spawn().await;
    app.arm.fail_next(1, 429);
    app.arm.fail_next(1, 503);
    let id = TestApp::short_id(&app.command(ALICE, OPS, "restart-web dev").await);
    app.drain(&app.worker()).await;
    app.wait_for_slack(&id, "*Completed*").await;
    app.finish().await;
}

#[tokio::test]
async fn arm_down_for_good_leaves_the_message_then_gives_up_and_tells_the_requester() {
    let app = TestApp::spawn().await;
    app.arm.fail_next(10_000, 500);
    let id = TestApp::short_id(&app.command(ALICE, OPS, "restart-web dev").await);
    let mut settings = app.worker_settings();
    settings.visibility = Duration::from_secs(1);
    settings.max_dequeue = 1;
    let worker = app.worker_with(settings);
    // Delivery 1 fails transiently. Deliveries 2 to 4 are over the limit, but the job was
    // marked for its start, and Azure cannot say whether it has it: left for a retry. Delivery
    // 5 is past four times the limit.
    app.process_until(&worker, Duration::from_secs(60), "not given up on", || {
        app.slack_count(&id, "gave up") > 0
    })
    .await;
    let text = app.final_text(&id, "*Failed*").await;
    assert!(text.contains("gave up"), "{text}");
    let poison = app.take_poison().await;
    assert_eq!(poison.len(), 1);
    assert!(
        poison[0].reason.contains("delivered 5 times"),
        "{:?}",
        poison[0].reason
    );
    assert_eq!(app.decode(&poison[0].original).runbook, "restart-web");
    app.finish().await;
}

#[tokio::test]
async fn slack_rate_limiting_is_honoured_and_the_final_status_still_arrives() {
    let app = TestApp::spawn().await;
    app.slack
        .fail_next(PathKind::ResponseUrl, 2, 429, "rate_limited");
    let id = TestApp::short_id(&app.command(ALICE, OPS, "echo hi").await);
    app.drain(&app.worker()).await;
    let messages = app.slack.messages();
    let limited: Vec<_> = messages.iter().filter(|m| m.status == 429).collect();
    assert_eq!(limited.len(), 2);
    let final_at = app
        .wait_for_slack(&id, "*Completed*")
        .await
        .last()
        .map(|m| m.at)
        .expect("final");
    assert!(
        final_at.duration_since(limited[0].at) >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
    app.finish().await;
}

#[tokio::test]
async fn unreadable_messages_go_to_the_poison_queue_with_the_reason() {
    let app = TestApp::spawn().await;
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    app.put_raw("%%% not base64").await;
    app.put_raw(&b64("{not json")).await;
    app.put_raw(&b64(r#"{"schema": 2, "job_id": "x"}"#)).await;
    assert_eq!(app.drain(&app.worker()).await, 3);
    let mut reasons: Vec<String> = app
        .take_poison()
        .await
        .into_iter()
        .map(|p| p.reason)
        .collect();
    reasons.sort();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("not valid base64")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("not UTF-8 JSON")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("schema 2 is not supported")),
        "{reasons:?}"
    );
    app.finish().await;
}

#[tokio::test]
async fn a_message_without_a_valid_mac_is_poisoned_never_run_and_nothing_is_posted() {
    let app = TestApp::spawn().await;
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    // What someone who can write to the queue, but lacks the key, could put there: a job for an
    // allowed user, unsigned, signed with another key, or a signed job with its user changed.
    let job = |n: u8| JobMessage {
        job_id: job_id_from_signature(&format!("v0=forged{n}")),
        ..app.run_message("record", &[("n", &n.to_string())])
    };
    let unsigned = b64.encode(serde_json::to_vec(&job(1)).expect("json"));
    let other_key = chatops_shared::job::JobKey::generate().expect("key");
    let wrong_key = job(2).encode(&other_key);
    let mut altered: serde_json::Value =
        serde_json::from_slice(&b64.decode(app.queue_text(&job(3))).expect("b64")).expect("json");
    altered["user_id"] = serde_json::json!(BOB);
    altered["params"]["n"] = serde_json::json!("33");
    let altered = b64.encode(altered.to_string());
    for text in [&unsigned, &wrong_key, &altered] {
        app.put_raw(text).await;
    }
    assert_eq!(app.drain(&app.worker()).await, 3);
    let poison = app.take_poison().await;
    assert_eq!(poison.len(), 3, "each goes to the poison queue at once");
    assert!(
        poison
            .iter()
            .all(|p| p.dequeue_count == 1 && p.reason.contains("`mac`")),
        "{:?}",
        poison.iter().map(|p| &p.reason).collect::<Vec<_>>()
    );
    let mut originals: Vec<&str> = poison.iter().map(|p| p.original.as_str()).collect();
    originals.sort_unstable();
    let mut sent = vec![unsigned.as_str(), wrong_key.as_str(), altered.as_str()];
    sent.sort_unstable();
    assert_eq!(originals, sent, "kept unchanged for an operator");
    assert!(
        !app.dir.join("started.log").exists(),
        "no script was started"
    );
    assert!(
        app.slack.messages().is_empty(),
        "nothing is posted to a response_url an unverified message names"
    );
    app.finish().await;
}

#[tokio::test]
async fn the_runner_refuses_a_job_the_catalog_does_not_allow() {
    let app = TestApp::spawn().await;
    // Written straight to the queue, bypassing the ingress: Bob may not run `echo`.
    let job = JobMessage {
        schema: SCHEMA_VERSION,
        job_id: job_id_from_signature("v0=forged"),
        kind: Default::default(),
        runbook: "echo".into(),
        params: BTreeMap::from([("first".into(), "x".into())]),
        user_id: BOB.into(),
        user_name: "bob".into(),
        team_id: "T0TEST".into(),
        channel_id: OPS.into(),
        channel_name: None,
        response_url: Some(Secret::new(app.slack.response_url())),
        requested_at: time::OffsetDateTime::now_utc(),
        enterprise_id: None,
        traceparent: None,
        started_at: None,
        record_day: None,
        target: None,
        rerun_of: None,
        catalog_version: None,
        secret_params: Vec::new(),
    };
    // Signed with the ingress's key, as after a catalog change since the command was accepted.
    app.put_raw(&app.queue_text(&job)).await;
    app.drain(&app.worker()).await;
    let text = app.final_text(&job.short_id(), "*Refused*").await;
    assert!(text.contains("not allowed"), "{text}");
    assert!(!text.contains("args:"), "nothing ran: {text}");
    assert!(
        !text.contains("catalog changed"),
        "no version, no claim: {text}"
    );
    app.finish().await;
}

#[tokio::test]
async fn a_refusal_says_when_the_catalog_changed_since_the_command_was_accepted() {
    let app = TestApp::spawn().await;
    // Bob may not run `echo`: under an older catalog (another version), and under this one.
    let job = |n: u8, version: &str| JobMessage {
        job_id: job_id_from_signature(&format!("v0=catalog-{n}")),
        user_id: BOB.into(),
        catalog_version: Some(version.to_owned()),
        ..forged_echo(&app)
    };
    let older = job(1, "0123456789abcdef");
    let same = job(2, app.catalog.version());
    for j in [&older, &same] {
        app.put_raw(&app.queue_text(j)).await;
    }
    app.drain(&app.worker()).await;
    let text = app.final_text(&older.short_id(), "*Refused*").await;
    assert!(
        text.contains("not allowed")
            && text.contains("the catalog changed since the command was accepted"),
        "{text}"
    );
    let text = app.final_text(&same.short_id(), "*Refused*").await;
    assert!(text.contains("not allowed"), "{text}");
    assert!(!text.contains("catalog changed"), "{text}");
    app.finish().await;
}

#[tokio::test]
async fn the_runner_refuses_a_job_from_a_workspace_not_listed() {
    let app = TestApp::spawn().await;
    // Alice may run `echo`, but her workspace (T0TEST) is not the runner's.
    let job = forged_echo(&app);
    app.put_raw(&app.queue_text(&job)).await;
    let mut settings = app.worker_settings();
    settings.workspaces = Workspaces::new(Some(vec!["T0OTHER"]), None::<Vec<String>>);
    app.drain(&app.worker_with(settings)).await;
    let text = app.final_text(&job.short_id(), "*Refused*").await;
    assert!(
        text.contains("workspace (T0TEST) is not allowed to use this app"),
        "{text}"
    );
    assert!(!text.contains("args:"), "nothing ran: {text}");
    app.finish().await;
}

#[tokio::test]
async fn queued_messages_carry_the_catalog_version() {
    let app = TestApp::spawn().await;
    app.command(ALICE, OPS, "echo hi").await;
    let job = take_job(&app).await;
    assert_eq!(job.catalog_version.as_deref(), Some(app.catalog.version()));
    assert_eq!(app.catalog.version().len(), 16);
    app.finish().await;
}

/// `echo x` from Alice in #ops, written straight to the queue (no catalog version).
fn forged_echo(app: &TestApp) -> JobMessage {
    JobMessage {
        job_id: job_id_from_signature("v0=forged-echo"),
        ..app.run_message("echo", &[("first", "x")])
    }
}

#[tokio::test]
async fn a_local_job_whose_runner_died_is_reported_interrupted_not_run_again() {
    let app = TestApp::spawn().await;
    let id = TestApp::short_id(&app.command(ALICE, OPS, "record n=1").await);
    // A runner takes the message, marks the job started (as the worker does just before the
    // script starts), and dies before deleting it.
    let taken = app
        .queue
        .receive(1, Duration::from_secs(30))
        .await
        .expect("receive");
    assert_eq!(taken.len(), 1);
    let mut job = app.decode(&taken[0].text);
    job.started_at = Some(time::OffsetDateTime::now_utc());
    app.queue
        .replace(&taken[0], &app.queue_text(&job), Duration::from_secs(1))
        .await
        .expect("mark started");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    app.drain(&app.worker()).await;
    let text = app.final_text(&id, "*Interrupted*").await;
    assert!(text.contains("it was not run again"), "{text}");
    assert!(
        !app.dir.join("record.log").exists(),
        "the script was not run again"
    );
    app.finish().await;
}

#[tokio::test]
async fn a_message_handed_back_before_its_job_started_runs_normally() {
    let app = TestApp::spawn().await;
    let id = TestApp::short_id(&app.command(ALICE, OPS, "record n=1").await);
    // Taken and handed back at once, as a runner does with messages it received while
    // shutting down: delivered twice, but never started.
    let taken = app
        .queue
        .receive(1, Duration::from_secs(30))
        .await
        .expect("receive");
    app.queue
        .extend(&taken[0], Duration::ZERO)
        .await
        .expect("hand back");
    app.drain(&app.worker()).await;
    let text = app.final_text(&id, "*Completed*").await;
    assert!(text.contains("recorded"), "{text}");
    let log = std::fs::read_to_string(app.dir.join("record.log")).expect("record log");
    assert_eq!(log.lines().count(), 1);
    app.finish().await;
}

#[tokio::test]
async fn two_runners_n_commands_make_exactly_n_jobs() {
    const N: usize = 24;
    let app = TestApp::spawn().await;
    let mut ids = HashSet::new();
    for n in 0..N {
        let answer = app.command(ALICE, OPS, &format!("record n={n}")).await;
        assert_eq!(answer.response_type(), "in_channel", "{answer:?}");
        ids.insert(TestApp::short_id(&answer));
    }
    assert_eq!(ids.len(), N);
    let runners = app.spawn_runners(2, app.worker_settings());
    let finals = app
        .slack
        .wait_for(
            |all| {
                all.iter()
                    .filter(|m| m.text().contains("*Completed*"))
                    .count()
                    >= N
            },
            Duration::from_secs(60),
        )
        .await;
    runners.stop().await;
    let completed: Vec<_> = finals
        .iter()
        .filter(|m| m.text().contains("*Completed*"))
        .collect();
    assert_eq!(completed.len(), N, "one final message per job");
    let log = std::fs::read_to_string(app.dir.join("record.log")).expect("record log");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), N, "each job ran once:\n{log}");
    let distinct: HashSet<&str> = lines
        .iter()
        .map(|l| l.split(' ').next().unwrap_or_default())
        .collect();
    assert_eq!(distinct.len(), N, "no job ran twice:\n{log}");
    app.finish().await;
}

#[tokio::test]
async fn a_job_longer_than_the_visibility_timeout_runs_once_while_another_runner_polls() {
    let app = TestApp::spawn().await;
    let id = TestApp::short_id(&app.command(ALICE, OPS, "record n=1 pause=5").await);
    let mut settings = app.worker_settings();
    settings.visibility = Duration::from_secs(2);
    let runners = app.spawn_runners(2, settings);
    app.wait_for_slack(&id, "*Completed*").await;
    // Past another visibility period: a message whose invisibility lapsed would be taken again.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    runners.stop().await;
    assert_ran_once_and_reported_once(&app, &id);
    app.finish().await;
}

#[tokio::test]
async fn a_local_job_whose_runner_is_killed_mid_script_is_not_run_again() {
    let app = TestApp::spawn().await;
    let id = TestApp::short_id(&app.command(ALICE, OPS, "record n=1 pause=30").await);
    let mut settings = app.worker_settings();
    settings.visibility = Duration::from_secs(2);
    let worker = app.worker_with(settings.clone());
    let runner = tokio::spawn(async move { worker.process_next().await });
    app.wait_for_script_start().await;
    let started = app.dir.join("started.log");
    // The runner dies mid-script: its task is dropped (the script's process group with it) and
    // the message comes back when its invisibility ends.
    runner.abort();
    let _ = runner.await;
    app.drain_after_crash(&app.worker_with(settings)).await;
    let text = app.final_text(&id, "*Interrupted*").await;
    assert!(text.contains("it was not run again"), "{text}");
    let starts = std::fs::read_to_string(&started).expect("started log");
    assert_eq!(starts.lines().count(), 1, "started once:\n{starts}");
    assert!(
        !app.dir.join("record.log").exists(),
        "the first run was killed, and none followed"
    );
    app.finish().await;
}

#[tokio::test]
async fn a_local_job_whose_runner_died_is_not_run_again_when_its_runbook_moved_to_automation() {
    let app = TestApp::spawn().await;
    let id = TestApp::short_id(&app.command(ALICE, OPS, "record n=1 pause=30").await);
    let job_id = app.peek_jobs().await[0].job_id.to_string();
    let mut settings = app.worker_settings();
    settings.visibility = Duration::from_secs(2);
    let worker = app.worker_with(settings.clone());
    let runner = tokio::spawn(async move { worker.process_next().await });
    app.wait_for_script_start().await;
    runner.abort();
    let _ = runner.await;
    // Meanwhile `record` became an Automation runbook.
    let path = app.dir.join("runbooks.toml");
    let text = std::fs::read_to_string(&path).expect("read catalog");
    let old = "executor = \"local\"\ntarget = \"record.sh\"";
    assert!(text.contains(old));
    let moved = text.replace(old, "executor = \"automation\"\ntarget = \"Record\"");
    std::fs::write(&path, moved).expect("write catalog");
    app.live_catalog.reload().expect("the new catalog loads");

    app.drain_after_crash(&app.worker_with(settings)).await;
    let text = app.final_text(&id, "*Interrupted*").await;
    assert!(text.contains("it was not run again"), "{text}");
    assert_eq!(app.arm.put_count(&job_id), 0, "not run again in Azure");
    app.finish().await;
}

#[tokio::test]
async fn two_messages_for_one_local_job_run_it_once() {
    let app = TestApp::spawn().await;
    let id = TestApp::short_id(&app.command(ALICE, OPS, "record n=1").await);
    // A second copy of the message, as a retried enqueue or a replay on another replica makes.
    let job = app.peek_jobs().await.remove(0);
    app.put_raw(&app.queue_text(&job)).await;
    assert_eq!(app.drain(&app.worker()).await, 2);
    app.final_text(&id, "*Completed*").await;
    assert_ran_once_and_reported_once(&app, &id);
    app.finish().await;
}

/// The `record` job ran exactly once, and Slack got one final status for it: Completed.
fn assert_ran_once_and_reported_once(app: &TestApp, id: &str) {
    let log = std::fs::read_to_string(app.dir.join("record.log")).expect("record log");
    assert_eq!(log.lines().count(), 1, "ran once:\n{log}");
    let mine: Vec<String> = app
        .slack
        .messages()
        .iter()
        .filter(|m| m.text().contains(id))
        .map(|m| m.text().to_owned())
        .collect();
    let completed = mine.iter().filter(|t| t.contains("*Completed*")).count();
    assert_eq!(completed, 1, "{mine:#?}");
    assert!(!mine.iter().any(|t| t.contains("nterrupted")), "{mine:#?}");
}

#[tokio::test]
async fn a_final_status_slack_refused_is_posted_later_when_its_poison_move_failed() {
    let app = TestApp::spawn().await;
    let id = TestApp::short_id(&app.command(ALICE, OPS, "echo hi").await);
    // Slack refuses every post for good, and the move to the poison queue fails once.
    for kind in [PathKind::ResponseUrl, PathKind::Webhook] {
        app.slack.fail_next(kind, 1000, 404, "no_service");
    }
    let queue = Arc::new(ShapedQueue::over(app.runner_queue()).failing_poison_sends(1));
    let mut settings = app.worker_settings();
    settings.visibility = Duration::from_secs(1);
    let worker = app.worker_on(queue, settings);
    assert_eq!(worker.process_next().await, Ok(Step::Processed));
    // Posts Slack took (the double keeps the refused ones too).
    let completed = || {
        app.slack
            .messages()
            .iter()
            .filter(|m| {
                m.status == 200 && m.text().contains(&id) && m.text().contains("*Completed*")
            })
            .count()
    };
    assert!(app.slack_count(&id, "*Completed*") > 0, "tried and refused");
    assert_eq!(completed(), 0);

    // The message was neither moved nor dropped: it comes back, and the status goes out.
    app.slack.recover();
    let arrived = || completed() > 0;
    app.process_until(
        &worker,
        Duration::from_secs(30),
        "the final status never arrived",
        arrived,
    )
    .await;
    assert_eq!(completed(), 1);
    assert!(app.take_poison().await.is_empty());
    app.finish().await;
}

#[tokio::test]
async fn a_job_given_up_on_whose_poison_move_failed_is_given_up_on_when_it_comes_back() {
    let app = TestApp::spawn().await;
    let id = TestApp::short_id(&app.command(ALICE, OPS, "echo hi").await);
    let queue = Arc::new(ShapedQueue::over(app.runner_queue()).failing_poison_sends(1));
    let mut settings = app.worker_settings();
    settings.visibility = Duration::from_secs(1);
    // Every delivery is over the limit.
    settings.max_dequeue = 0;
    let worker = app.worker_on(queue, settings);
    assert_eq!(worker.process_next().await, Ok(Step::Processed));
    assert_eq!(
        app.slack_count(&id, "gave up"),
        0,
        "not told before it is moved"
    );
    app.process_until(
        &worker,
        Duration::from_secs(30),
        "never given up on",
        || app.slack_count(&id, "gave up") > 0,
    )
    .await;
    assert_eq!(
        app.take_poison().await.len(),
        1,
        "on the poison queue, once"
    );
    app.finish().await;
}

/// One runner on a queue that loses one answer, with a 2 s visibility.
fn runner_losing(app: &TestApp) -> (Arc<ShapedQueue>, chatops_e2e::app::Runners) {
    let queue = Arc::new(ShapedQueue::over(app.runner_queue()).losing_one_extend_answer());
    let mut settings = app.worker_settings();
    settings.visibility = Duration::from_secs(2);
    let runners = app.spawn_workers(vec![app.worker_on(queue.clone(), settings)]);
    (queue, runners)
}

#[tokio::test]
async fn a_lost_answer_to_an_extension_does_not_let_go_of_a_running_local_job() {
    let app = TestApp::spawn().await;
    let id = TestApp::short_id(&app.command(ALICE, OPS, "record n=1 pause=6").await);
    let (queue, runners) = runner_losing(&app);
    app.wait_for_slack(&id, "*Completed*").await;
    // Past another visibility period: a message nobody holds would be delivered again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    runners.stop().await;
    assert_ran_once_and_reported_once(&app, &id);
    assert_eq!(
        queue.deliveries(),
        [2],
        "delivered again when the lost extension's invisibility ended, then held to the end"
    );
    app.finish().await;
}

#[tokio::test]
async fn a_lost_answer_to_an_extension_does_not_make_an_automation_job_followed_twice() {
    let app = TestApp::spawn().await;
    app.arm.script(
        "Restart-WebApp",
        Script::completes("Restart-WebApp: restarted 2 of 2 instances").polls(1, 150),
    );
    let id = TestApp::short_id(&app.command(ALICE, OPS, "restart-web dev").await);
    let job_id = app.peek_jobs().await[0].job_id.to_string();
    let (queue, runners) = runner_losing(&app);
    app.wait_for_slack(&id, "*Completed*").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    runners.stop().await;
    assert_eq!(app.arm.put_count(&job_id), 1, "followed by one delivery");
    assert_eq!(app.slack_count(&id, "*Completed*"), 1);
    assert_eq!(queue.deliveries(), [2]);
    app.finish().await;
}

#[tokio::test]
async fn a_duplicate_message_for_a_long_local_job_is_held_not_given_up_on() {
    let app = TestApp::spawn().await;
    let id = TestApp::short_id(&app.command(ALICE, OPS, "record n=1 pause=7").await);
    let job = app.peek_jobs().await.remove(0);
    // The job runs for more than `max_dequeue` visibility periods.
    let mut settings = app.worker_settings();
    settings.visibility = Duration::from_secs(2);
    settings.max_dequeue = 2;
    let runners = app.spawn_runners(1, settings);
    // A second message for the job arrives while it runs.
    let started = app.dir.join("started.log");
    wait_until("the script started", || started.exists()).await;
    app.put_raw(&app.queue_text(&job)).await;
    app.wait_for_slack(&id, "*Completed*").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    runners.stop().await;
    assert_ran_once_and_reported_once(&app, &id);
    assert!(
        !app.slack
            .messages()
            .iter()
            .any(|m| m.text().contains("gave up")),
        "{:#?}",
        app.slack.messages()
    );
    app.finish().await;
}

#[tokio::test]
async fn arm_outages_during_a_long_automation_job_do_not_end_its_delivery() {
    let app = TestApp::spawn().await;
    app.arm.script(
        "Restart-WebApp",
        Script::completes("Restart-WebApp: restarted 2 of 2 instances").polls(1, 200),
    );
    let id = TestApp::short_id(&app.command(ALICE, OPS, "restart-web dev").await);
    let job_id = app.peek_jobs().await[0].job_id.to_string();
    let mut settings = app.worker_settings();
    settings.visibility = Duration::from_secs(2);
    settings.max_dequeue = 2;
    let runners = app.spawn_runners(1, settings);
    wait_until("the job exists", || app.arm.job(&job_id).is_some()).await;
    // Five outages, each longer than the ARM client's own retries (3 tries).
    for outage in 1..=5 {
        app.arm.fail_next(3, 500);
        wait_until("the runner met the outage", || {
            failed_arm_requests(&app) >= 3 * outage
        })
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let text = app.final_text(&id, "*Completed*").await;
    runners.stop().await;
    assert!(text.contains("restarted 2 of 2"), "{text}");
    assert_eq!(app.arm.put_count(&job_id), 1, "one delivery followed it");
    assert!(
        !app.slack
            .messages()
            .iter()
            .any(|m| m.text().contains("gave up")),
        "{:#?}",
        app.slack.messages()
    );
    app.finish().await;
}

fn failed_arm_requests(app: &TestApp) -> usize {
    app.arm
        .requests()
        .iter()
        .filter(|r| r.status.as_u16() == 500)
        .count()
}

/// Waits (at most 20 s) until `done` holds.
async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_old_local_job_is_not_started_and_the_requester_is_told_through_the_webhook() {
    let app = TestApp::spawn().await;
    app.command(ALICE, OPS, "echo hi").await;
    let mut job = take_job(&app).await;
    job.requested_at = time::OffsetDateTime::now_utc() - time::Duration::hours(2);
    app.put_raw(&app.queue_text(&job)).await;
    app.drain(&app.worker()).await;
    let mine = app.wait_for_slack(&job.short_id(), "*Expired*").await;
    assert_eq!(mine.len(), 1, "{mine:#?}");
    // Its response_url lapsed after 30 minutes: the webhook carries the answer.
    assert_eq!(mine[0].kind, PathKind::Webhook);
    let text = mine[0].text();
    assert!(
        text.contains("Not started: the request was 2h") && text.contains("older than 1h"),
        "{text}"
    );
    assert!(!text.contains("args:"), "nothing ran: {text}");
    app.finish().await;
}

#[tokio::test]
async fn an_old_automation_job_that_never_started_expires_without_starting() {
    let app = TestApp::spawn().await;
    app.command(ALICE, OPS, "restart-web dev").await;
    let mut job = take_job(&app).await;
    job.requested_at = time::OffsetDateTime::now_utc() - time::Duration::seconds(10);
    app.put_raw(&app.queue_text(&job)).await;
    let mut settings = app.worker_settings();
    settings.max_job_age = Duration::from_secs(2);
    app.drain(&app.worker_with(settings)).await;
    let mine = app.wait_for_slack(&job.short_id(), "*Expired*").await;
    assert_eq!(mine.len(), 1, "{mine:#?}");
    assert_eq!(mine[0].kind, PathKind::ResponseUrl);
    assert!(
        mine[0].text().contains("older than 2s"),
        "{}",
        mine[0].text()
    );
    assert_eq!(app.arm.put_count(&job.job_id.to_string()), 0);
    assert!(app.arm.jobs().is_empty(), "nothing started in Azure");
    app.finish().await;
}

#[tokio::test]
async fn an_old_automation_job_that_started_is_followed_to_its_end() {
    let app = TestApp::spawn().await;
    app.command(ALICE, OPS, "restart-web dev").await;
    let mut job = take_job(&app).await;
    // A runner started it and died; the message comes back 70 minutes after the request.
    app.arm.seed_job(&job.job_id.to_string(), "Restart-WebApp");
    job.requested_at = time::OffsetDateTime::now_utc() - time::Duration::minutes(70);
    app.put_raw(&app.queue_text(&job)).await;
    app.drain(&app.worker()).await;
    let text = app.final_text(&job.short_id(), "*Completed*").await;
    assert!(text.contains("restarted 2 of 2"), "{text}");
    assert_eq!(
        app.arm.put_count(&job.job_id.to_string()),
        0,
        "found and followed, never started"
    );
    app.finish().await;
}

#[tokio::test]
async fn an_old_local_job_with_a_start_mark_is_reported_interrupted_not_expired() {
    let app = TestApp::spawn().await;
    app.command(ALICE, OPS, "record n=1").await;
    let mut job = take_job(&app).await;
    let now = time::OffsetDateTime::now_utc();
    job.requested_at = now - time::Duration::hours(2);
    job.started_at = Some(now - time::Duration::minutes(110));
    app.put_raw(&app.queue_text(&job)).await;
    app.drain(&app.worker()).await;
    let text = app.final_text(&job.short_id(), "*Interrupted*").await;
    assert!(text.contains("it was not run again"), "{text}");
    assert!(!text.contains("Expired"), "{text}");
    assert!(!app.dir.join("started.log").exists(), "not run again");
    app.finish().await;
}
