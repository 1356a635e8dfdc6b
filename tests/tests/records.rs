//! Job records end to end (issue 7, the runner's side): exactly once across ingress replicas
//! and runners, a runner killed between the final post and the delete, takeover of a dead
//! runner's job, stop of local and Automation jobs, all against a real Azurite (queue and blob).

// Test code: a failed step should stop the test with its message.
#![allow(clippy::expect_used)]

use chatops_e2e::app::{ALICE, BOB, OPS, Options, SIGNING_SECRET, TestApp};
use chatops_e2e::arm::Script;
use chatops_e2e::counting::CountingStore;
use chatops_e2e::process::Service;
use chatops_e2e::proxy::Proxy;
use chatops_e2e::shaped_queue::ShapedQueue;
use chatops_runner::worker::{Step, WorkerSettings};
use chatops_shared::audit::{AuditLog, AuditWriter};
use chatops_shared::job::{JobKind, JobMessage, job_id_from_signature};
use chatops_shared::membership::Membership;
use chatops_shared::queue::Received;
use chatops_shared::records::{ExecutorRef, JobState, Records, Versioned};
use std::sync::Arc;
use std::time::Duration;

/// The record of the job with short id `id`, once it exists.
async fn record_of(app: &TestApp, id: &str) -> Versioned {
    let records = app.records();
    let today = time::OffsetDateTime::now_utc().date();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let found = records.find(id, today).await.expect("list records");
        if let Some(summary) = found.first() {
            return records
                .read(&summary.name)
                .await
                .expect("read record")
                .expect("record exists");
        }
        assert!(tokio::time::Instant::now() < deadline, "no record for {id}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `done` holds for the record of `id`.
async fn wait_for_record(
    app: &TestApp,
    id: &str,
    what: &str,
    done: impl Fn(&Versioned) -> bool,
) -> Versioned {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let record = record_of(app, id).await;
        if done(&record) {
            return record;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: {:#?}",
            record.record
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn lines(app: &TestApp, file: &str) -> usize {
    std::fs::read_to_string(app.dir.join(file))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_finished_job_leaves_a_record_of_who_ran_what_and_how_it_ended() {
    let app = TestApp::spawn().await;
    let id = TestApp::short_id(&app.command(ALICE, OPS, "echo \"hello world\"").await);
    app.drain(&app.worker()).await;
    app.final_text(&id, "*Completed*").await;
    let record = wait_for_record(&app, &id, "reported", |r| r.record.reported).await;
    let r = &record.record;
    assert_eq!(
        (
            r.state,
            r.runbook.as_str(),
            r.user_id.as_str(),
            r.channel_id.as_str()
        ),
        (JobState::Completed, "echo", ALICE, OPS)
    );
    assert_eq!(
        r.params.get("first").map(String::as_str),
        Some("hello world")
    );
    assert_eq!(
        r.history.iter().map(|c| c.state).collect::<Vec<_>>(),
        [JobState::Pending, JobState::Running, JobState::Completed]
    );
    assert!(r.started_at.is_some() && r.ended_at.is_some());
    assert!(r.holder.is_none(), "nobody holds an ended job");
    assert!(matches!(r.executor, Some(ExecutorRef::Local { .. })));
    assert!(
        r.output_tail.contains("args: hello world two"),
        "{}",
        r.output_tail
    );
    assert!(record.name.starts_with("jobs/"), "{}", record.name);
    app.finish().await;
}

/// Two ingress processes receive the same signed request (a Slack retry reaching another
/// replica); three runner processes compete for the two messages: one run, one final status.
#[tokio::test]
async fn two_ingresses_and_three_runners_run_one_request_once() {
    let app = TestApp::spawn().await;
    let env = app.service_env();
    let ingresses = [
        Service::start("chatops-ingress", &env),
        Service::start("chatops-ingress", &env),
    ];
    let body = app.form(ALICE, OPS, "record n=1 pause=2");
    let ts = time::OffsetDateTime::now_utc().unix_timestamp();
    let signature = chatops_ingress::slack::verify::sign(SIGNING_SECRET, ts, body.as_bytes());
    let mut ids = Vec::new();
    for ingress in &ingresses {
        let addr = ingress.bound_addr().await;
        let answer: serde_json::Value = app
            .client
            .post(format!("http://{addr}/slack/commands"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", ts.to_string())
            .header("x-slack-signature", &signature)
            .body(body.clone())
            .send()
            .await
            .expect("ingress answers")
            .json()
            .await
            .expect("JSON answer");
        assert_eq!(answer["response_type"], "in_channel", "{answer}");
        ids.push(answer["text"].as_str().unwrap_or_default().to_owned());
    }
    let id = job_id_from_signature(&signature).simple().to_string()[..8].to_owned();
    assert!(ids.iter().all(|t| t.contains(&id)), "{ids:?}");
    assert_eq!(
        app.peek_jobs().await.len(),
        2,
        "each ingress queued its copy"
    );
    let mut runners: Vec<Service> = (0..3)
        .map(|_| Service::start("chatops-runner", &env))
        .collect();

    app.final_text(&id, "*Completed*").await;
    // The second copy is held by a runner that watches the record, then deleted.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while app
        .azure_queue
        .approximate_len(false)
        .await
        .expect("queue length")
        > 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the second copy was never deleted"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(lines(&app, "record.log"), 1, "ran once");
    assert_eq!(app.slack_count(&id, "*Completed*"), 1, "one final status");
    for runner in &mut runners {
        runner.terminate(Duration::from_secs(15)).await;
    }
    app.finish().await;
}

/// The runner process is killed (SIGKILL) after Slack got the final status and the record says
/// so, while its delete of the message hangs: the message comes back to another runner, which
/// finds the job reported and deletes it without a second post and without "interrupted".
#[tokio::test]
async fn a_runner_killed_between_the_final_post_and_the_delete_posts_nothing_more() {
    let app = TestApp::spawn().await;
    let proxy = Proxy::start(url::Url::parse(&app.azurite.queue_endpoint()).expect("url")).await;
    proxy.hold_deletes();
    let proxied = format!(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={};QueueEndpoint={}/devstoreaccount1;BlobEndpoint={};",
        chatops_shared::queue::connection::DEVSTORE_KEY,
        proxy.url(),
        app.azurite.blob_endpoint()
    );
    let env: Vec<(String, String)> = app
        .service_env()
        .into_iter()
        .map(|(k, v)| {
            if k == "AZURE_STORAGE_CONNECTION_STRING" {
                (k, proxied.clone())
            } else {
                (k, v)
            }
        })
        .collect();
    let mut runner = Service::start("chatops-runner", &env);
    let id = TestApp::short_id(&app.command(ALICE, OPS, "record n=1").await);
    app.final_text(&id, "*Completed*").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while proxy.held().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the runner never tried to delete the message"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    runner.kill().await;
    assert!(record_of(&app, &id).await.record.reported);

    // Its invisibility would end within the visibility timeout; end it now.
    let held = proxy.held().remove(0);
    let message = Received {
        message_id: held.message_id,
        pop_receipt: held.pop_receipt,
        dequeue_count: 1,
        text: String::new(),
    };
    app.queue
        .extend(&message, Duration::ZERO)
        .await
        .expect("message still there, hidden");
    assert_eq!(app.drain(&app.worker()).await, 1, "it came back once");
    assert_eq!(app.peek_jobs().await.len(), 0, "and was deleted");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.slack_count(&id, "*Completed*"), 1, "no second post");
    assert_eq!(
        app.slack_count(&id, "nterrupted"),
        0,
        "not called interrupted"
    );
    assert_eq!(lines(&app, "record.log"), 1, "not run again");
    app.finish().await;
}

/// A runner that ended a job and wrote it to the record died before posting: the next
/// delivery posts the final status from the record, once, and does not run the job again.
#[tokio::test]
async fn a_job_that_ended_unreported_is_reported_from_its_record() {
    let app = TestApp::spawn().await;
    let id = TestApp::short_id(&app.command(ALICE, OPS, "record n=1").await);
    let job = app.peek_jobs().await.remove(0);
    let worker = app.worker();
    assert_eq!(worker.process_next().await, Ok(Step::Processed));
    app.final_text(&id, "*Completed*").await;
    // As if the post had not happened: unreported, and the message back on the queue.
    let records = app.records();
    let record = wait_for_record(&app, &id, "reported", |r| r.record.reported).await;
    let mut unreported = record.record.clone();
    unreported.reported = false;
    records.replace(&record, unreported).await.expect("rewrite");
    app.put_raw(&app.queue_text(&job)).await;
    app.drain(&worker).await;
    assert_eq!(
        app.slack_count(&id, "*Completed*"),
        2,
        "posted again from the record"
    );
    assert_eq!(lines(&app, "record.log"), 1, "not run again");
    assert!(record_of(&app, &id).await.record.reported);
    app.finish().await;
}

/// The runner following an Automation job dies; the message comes back to another runner,
/// which takes the job over in its record and follows the same Azure job to its end.
/// An Automation job (`restart-web prod` by Alice) seen running, whose runner was then killed:
/// the app, the job's short id, its job id, and worker settings whose visibility timeout (2 s)
/// brings its message back soon.
async fn running_then_its_runner_died() -> (TestApp, String, String, WorkerSettings) {
    let app = TestApp::spawn().await;
    app.arm.script(
        "Restart-WebApp",
        Script::completes("restarted").polls(1, 60),
    );
    its_runner_died_once_slack_shows(app, "running").await
}

/// Alice's `restart-web prod` taken by a runner that is killed once Slack shows `shown` for
/// the job: the app, the job's short id, its job id, and worker settings whose visibility
/// timeout (2 s) brings its message back soon.
async fn its_runner_died_once_slack_shows(
    app: TestApp,
    shown: &str,
) -> (TestApp, String, String, WorkerSettings) {
    let id = TestApp::short_id(&app.command(ALICE, OPS, "restart-web prod").await);
    let job_id = app.peek_jobs().await[0].job_id.to_string();
    let mut settings = app.worker_settings();
    settings.visibility = Duration::from_secs(2);
    let first = app.worker_with(settings.clone());
    let dead = tokio::spawn(async move { first.process_next().await });
    app.wait_for_slack(&id, shown).await;
    dead.abort();
    let _ = dead.await;
    (app, id, job_id, settings)
}

#[tokio::test]
async fn an_automation_job_whose_runner_died_is_taken_over_and_followed() {
    let (app, id, job_id, settings) = running_then_its_runner_died().await;
    // The message comes back when its invisibility ends; the record's heartbeat is stale by then.
    app.drain_after_crash(&app.worker_with(settings)).await;
    let text = app.final_text(&id, "*Completed*").await;
    assert!(text.contains("restarted"), "{text}");
    assert_eq!(
        app.arm.put_count(&job_id),
        1,
        "the Azure job was not started twice"
    );
    let record = record_of(&app, &id).await;
    assert!(
        record
            .record
            .history
            .iter()
            .any(|c| c.note.as_deref().is_some_and(|n| n.contains("taken over"))),
        "{:#?}",
        record.record.history
    );
    assert_eq!(app.slack_count(&id, "*Completed*"), 1);
    app.finish().await;
}

/// Runner settings whose shutdown grace (1 s) ends while the test's job runs, with a visibility
/// timeout (60 s, the default) far longer than the tests below wait: a job its runner merely
/// dropped would not come back to the next runner in time.
fn short_grace(app: &TestApp) -> WorkerSettings {
    let mut settings = app.worker_settings();
    settings.visibility = Duration::from_secs(60);
    settings.shutdown_grace = Duration::from_secs(1);
    settings
}

/// After its runner stopped: the record names no holder and says why.
async fn assert_handed_over(app: &TestApp, id: &str) {
    let record = record_of(app, id).await.record;
    assert!(record.holder.is_none(), "{record:#?}");
    assert!(
        record.history.iter().any(|c| c
            .note
            .as_deref()
            .is_some_and(|n| n.contains("handed it over"))),
        "{:#?}",
        record.history
    );
}

#[tokio::test]
async fn a_script_still_running_when_the_shutdown_grace_ends_is_handed_over_at_once() {
    let app = TestApp::spawn().await;
    let id = TestApp::short_id(&app.command(ALICE, OPS, "record n=1 pause=30").await);
    let runners = app.spawn_runners(1, short_grace(&app));
    app.wait_for_script_start().await;
    runners.stop().await;
    assert_handed_over(&app, &id).await;
    // The next runner finds the message on its first poll, not a visibility timeout later.
    let next = app.worker_with(short_grace(&app));
    assert_eq!(next.process_next().await, Ok(Step::Processed));
    let text = app.final_text(&id, "*Interrupted*").await;
    assert!(text.contains("it was not run again"), "{text}");
    assert_eq!(lines(&app, "started.log"), 1);
    assert_eq!(lines(&app, "record.log"), 0, "killed with its runner");
    app.finish().await;
}

#[tokio::test]
async fn the_shutdown_grace_counts_from_the_shutdown_even_when_the_last_poll_is_slow() {
    let app = TestApp::spawn().await;
    let id = TestApp::short_id(&app.command(ALICE, OPS, "record n=1 pause=30").await);
    // Every receive takes 5 s; two slots, so the loop polls again while the script runs.
    let queue =
        Arc::new(ShapedQueue::over(app.runner_queue()).slow_receives(Duration::from_secs(5)));
    let mut settings = short_grace(&app);
    settings.shutdown_grace = Duration::from_secs(4);
    settings.concurrency = 2;
    let runners = app.spawn_workers(vec![app.worker_on(queue, settings)]);
    app.wait_for_script_start().await;
    // The poll now out takes this one, after the shutdown.
    let second = TestApp::short_id(&app.command(ALICE, OPS, "record n=2").await);
    let began = std::time::Instant::now();
    runners.stop().await;
    // The grace (4 s) ended while the last poll was still out (5 s): the job is handed over
    // when it returns, not a whole grace later (9 s).
    let took = began.elapsed();
    assert!(took < Duration::from_millis(7500), "stopped in {took:?}");
    assert_handed_over(&app, &id).await;
    // What that poll took is handed back too, though the grace was over.
    assert_eq!(app.peek_jobs().await.len(), 2, "both visible at once");
    let next = app.worker_with(short_grace(&app));
    assert_eq!(app.drain(&next).await, 2);
    app.final_text(&id, "*Interrupted*").await;
    app.final_text(&second, "*Completed*").await;
    app.finish().await;
}

#[tokio::test]
async fn a_script_that_ended_before_the_shutdown_grace_ends_is_reported_by_its_runner() {
    let app = TestApp::spawn().await;
    // Ends at once, but leaves a process holding its output: its runner reads on for the drain
    // limit (2 s), past the shutdown grace (1 s).
    app.add_script_runbook(
        "leaves",
        "Leaves a process behind",
        &format!(
            "#!/bin/sh\necho \"$CHATOPS_JOB_ID\" >> '{}'\nsleep 30 &\necho done\n",
            app.dir.join("started.log").display()
        ),
    );

    let id = TestApp::short_id(&app.command(ALICE, OPS, "leaves").await);
    let runners = app.spawn_runners(1, short_grace(&app));
    app.wait_for_script_start().await;
    runners.stop().await;
    // Not handed over (the next runner could only say it was interrupted): reported.
    let text = app.final_text(&id, "*Completed*").await;
    assert!(text.contains("done"), "{text}");
    let record = record_of(&app, &id).await.record;
    assert!(
        !record.history.iter().any(|c| c
            .note
            .as_deref()
            .is_some_and(|n| n.contains("handed it over"))),
        "{:#?}",
        record.history
    );
    assert_eq!(app.slack_count(&id, "*Interrupted*"), 0);
    app.finish().await;
}

#[tokio::test]
async fn a_job_not_started_when_shutdown_begins_is_handed_over_unstarted() {
    // A runbook the runner checks Slack's user groups for before it starts it.
    let app = TestApp::spawn_opts(Options {
        bot: true,
        extra_runbooks: "\n[runbooks.page]\ndescription = \"For the on-call group\"\nexecutor = \"local\"\ntarget = \"echo.sh\"\nallow = { usergroups = [\"S0ONCALL\"] }\n",
        ..Options::default()
    })
    .await;
    app.slack.set_usergroup("S0ONCALL", &[BOB]);
    let id = TestApp::short_id(&app.command(BOB, OPS, "page").await);
    // The runner's lookup is slow: shutdown begins while it waits, well within the grace.
    app.slack
        .delay_method("usergroups.users.list", Duration::from_secs(2));
    let mut settings = app.worker_settings();
    settings.shutdown_grace = Duration::from_secs(20);
    let membership = Membership::new(Some(app.slack.api_client()), Duration::ZERO);
    let runners = app.spawn_workers(vec![
        app.worker_with(settings.clone())
            .with_membership(membership),
    ]);
    let claimed = record_of(&app, &id).await.record;
    assert!(
        claimed.holder.is_some() && claimed.state == JobState::Pending,
        "{claimed:#?}"
    );
    runners.stop().await;
    assert_eq!(
        app.slack_count(&id, "*Completed*"),
        0,
        "not run by the stopping runner"
    );
    let record = record_of(&app, &id).await.record;
    assert!(record.holder.is_none(), "{record:#?}");
    assert!(
        record.history.iter().any(|c| c
            .note
            .as_deref()
            .is_some_and(|n| n.contains("did not start the job"))),
        "{:#?}",
        record.history
    );
    // The next runner finds it at once and runs it, once.
    let membership = Membership::new(Some(app.slack.api_client()), Duration::ZERO);
    let next = app.worker_with(settings).with_membership(membership);
    assert_eq!(next.process_next().await, Ok(Step::Processed));
    let text = app.final_text(&id, "*Completed*").await;
    assert!(text.contains("args:"), "{text}");
    assert_eq!(app.slack_count(&id, "*Completed*"), 1);
    app.finish().await;
}

#[tokio::test]
async fn an_automation_job_still_running_when_the_shutdown_grace_ends_is_followed_on_at_once() {
    let app = TestApp::spawn().await;
    let runs = Duration::from_secs(4);
    app.arm
        .script("Restart-WebApp", Script::runs_for("restarted", runs, runs));
    let id = TestApp::short_id(&app.command(ALICE, OPS, "restart-web prod").await);
    let job_id = app.peek_jobs().await[0].job_id.to_string();
    let runners = app.spawn_runners(1, short_grace(&app));
    app.wait_for_slack(&id, "running").await;
    runners.stop().await;
    assert_handed_over(&app, &id).await;
    let next = app.worker_with(short_grace(&app));
    assert_eq!(next.process_next().await, Ok(Step::Processed));
    let text = app.final_text(&id, "*Completed*").await;
    assert!(text.contains("restarted"), "{text}");
    assert_eq!(app.arm.put_count(&job_id), 1, "started once, followed on");
    assert_eq!(app.slack_count(&id, "*Completed*"), 1);
    app.finish().await;
}

/// Reloads the catalog with `restart-web` allowed to Bob only.
fn alice_may_no_longer_restart_web(app: &TestApp) {
    let path = app.dir.join("runbooks.toml");
    let text = std::fs::read_to_string(&path).expect("read catalog");
    let table = text
        .find("[runbooks.restart-web]")
        .expect("restart-web is in the catalog");
    let old = r#"allow = { users = ["UALICE"], channels = ["COPS"] }"#;
    let at = table + text[table..].find(old).expect("its allow rule");
    let tightened = format!(
        "{}{}{}",
        &text[..at],
        r#"allow = { users = ["UBOB"] }"#,
        &text[at + old.len()..]
    );
    std::fs::write(&path, tightened).expect("write catalog");
    app.live_catalog.reload().expect("the new catalog loads");
}

/// An Automation job marked running in its record whose start Azure refused (503) until its
/// message's first delivery gave up for now; Azure answers again from here on: the app, the
/// job's short id, its job id, and worker settings whose visibility timeout (1 s) brings its
/// message back soon.
async fn azure_never_took_it() -> (TestApp, String, String, WorkerSettings) {
    let app = TestApp::spawn().await;
    app.arm.fail_next(10_000, 503);
    let id = TestApp::short_id(&app.command(ALICE, OPS, "restart-web prod").await);
    let job_id = app.peek_jobs().await[0].job_id.to_string();
    let mut settings = app.worker_settings();
    settings.visibility = Duration::from_secs(1);
    let worker = app.worker_with(settings.clone());
    while worker.process_next().await != Ok(Step::Processed) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let record = record_of(&app, &id).await.record;
    assert_eq!(record.state, JobState::Running, "{record:#?}");
    assert!(record.started_at.is_none());
    app.arm.recover();
    (app, id, job_id, settings)
}

/// GETs of the Automation job `job_id` answered 404 (it was looked for, and not there).
fn looked_for_in_vain(app: &TestApp, job_id: &str) -> usize {
    app.arm
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with(job_id) && r.status == 404)
        .count()
}

#[tokio::test]
async fn a_job_azure_never_took_is_checked_again_before_it_is_created() {
    let (app, id, job_id, settings) = azure_never_took_it().await;
    alice_may_no_longer_restart_web(&app);
    // The message comes back when its invisibility ends; Azure may have the job (it is looked
    // for first: not there), and, checked again, it is refused.
    app.drain_after_crash(&app.worker_with(settings)).await;
    let text = app.final_text(&id, "*Refused*").await;
    assert!(text.contains("UALICE") || text.contains("allow"), "{text}");
    assert_eq!(app.arm.put_count(&job_id), 0, "never created");
    assert_eq!(looked_for_in_vain(&app, &job_id), 1);
    app.finish().await;
}

#[tokio::test]
async fn a_job_azure_never_took_whose_message_came_back_too_often_is_given_up_on() {
    let (app, id, job_id, mut settings) = azure_never_took_it().await;
    // The second delivery is over the limit; Azure has no such job to follow. (While the dead
    // runner's heartbeat has not quite lapsed, the message is left to come back once more.)
    settings.max_dequeue = 1;
    let worker = app.worker_with(settings);
    app.process_until(
        &worker,
        Duration::from_secs(30),
        "never given up on",
        || app.slack_count(&id, "*Failed*") > 0,
    )
    .await;
    let text = app.final_text(&id, "*Failed*").await;
    assert!(text.contains("gave up"), "{text}");
    assert_eq!(looked_for_in_vain(&app, &job_id), 1);
    assert_eq!(app.take_poison().await.len(), 1);
    app.finish().await;
}

#[tokio::test]
async fn a_job_azure_never_took_whose_runbook_was_removed_is_refused_after_azure_is_asked() {
    let (app, id, job_id, settings) = azure_never_took_it().await;
    restart_web_removed(&app);
    app.drain_after_crash(&app.worker_with(settings)).await;
    let text = app.final_text(&id, "*Refused*").await;
    assert!(
        text.contains("no longer in this runner's catalog"),
        "{text}"
    );
    assert_eq!(looked_for_in_vain(&app, &job_id), 1);
    app.finish().await;
}

/// Reloads the catalog without `restart-web`.
fn restart_web_removed(app: &TestApp) {
    let path = app.dir.join("runbooks.toml");
    let text = std::fs::read_to_string(&path).expect("read catalog");
    let start = text
        .find("[runbooks.restart-web]")
        .expect("restart-web is in the catalog");
    let end = start
        + 1
        + text[start + 1..]
            .find("\n[runbooks.")
            .expect("a table after it");
    std::fs::write(&path, format!("{}{}", &text[..start], &text[end..])).expect("write catalog");
    app.live_catalog.reload().expect("the new catalog loads");
    assert!(app.live_catalog.current().get("restart-web").is_none());
}

/// An Automation job (`restart-web prod` by Alice) that Azure created but holds back
/// (`Queued`: the account runs as many jobs as it may), whose runner was then killed: the
/// app, the job's short id, its job id, and worker settings whose visibility timeout (2 s)
/// brings its message back soon.
async fn held_back_then_its_runner_died() -> (TestApp, String, String, WorkerSettings) {
    let app = TestApp::spawn().await;
    app.arm.limit_concurrent_jobs(0);
    app.arm
        .script("Restart-WebApp", Script::completes("restarted"));
    let (app, id, job_id, settings) = its_runner_died_once_slack_shows(app, "*waiting*").await;
    assert_eq!(app.arm.queued_jobs(), 1, "Azure holds the job back");
    let record = record_of(&app, &id).await.record;
    assert!(record.started_at.is_none(), "{record:#?}");
    (app, id, job_id, settings)
}

#[tokio::test]
async fn a_job_azure_holds_back_taken_over_after_its_rules_changed_is_followed_not_refused() {
    let (app, id, job_id, settings) = held_back_then_its_runner_died().await;
    // Alice may no longer start it, but Azure has it: it will run, and is followed.
    alice_may_no_longer_restart_web(&app);
    app.arm.limit_concurrent_jobs(1);

    app.drain_after_crash(&app.worker_with(settings)).await;
    let text = app.final_text(&id, "*Completed*").await;
    assert!(text.contains("restarted"), "{text}");
    assert_eq!(app.slack_count(&id, "*Refused*"), 0);
    assert_eq!(app.arm.put_count(&job_id), 1, "created once");
    app.finish().await;
}

#[tokio::test]
async fn a_job_azure_holds_back_whose_runbook_was_removed_is_reported_interrupted_by_name() {
    let (app, id, job_id, settings) = held_back_then_its_runner_died().await;
    restart_web_removed(&app);
    app.drain_after_crash(&app.worker_with(settings)).await;
    let text = app.final_text(&id, "*Interrupted*").await;
    assert!(text.contains("has the job"), "{text}");
    assert!(text.contains(&job_id), "{text}");
    app.finish().await;
}

#[tokio::test]
async fn a_job_azure_holds_back_whose_message_came_back_too_often_is_followed_not_given_up_on() {
    let (app, id, _, mut settings) = held_back_then_its_runner_died().await;
    settings.max_dequeue = 1;
    app.arm.limit_concurrent_jobs(1);

    app.drain_after_crash(&app.worker_with(settings)).await;
    let text = app.final_text(&id, "*Completed*").await;
    assert!(text.contains("restarted"), "{text}");
    assert_eq!(app.slack_count(&id, "gave up"), 0);
    assert!(app.take_poison().await.is_empty());
    app.finish().await;
}

#[tokio::test]
async fn a_running_job_delivered_past_four_times_the_limit_is_given_up_on() {
    let (app, id, _, mut settings) = running_then_its_runner_died().await;
    // A limit of 0: four times it is 0 too, so this second delivery is past it.
    settings.max_dequeue = 0;
    app.drain_after_crash(&app.worker_with(settings)).await;
    let text = app.final_text(&id, "*Failed*").await;
    assert!(text.contains("gave up"), "{text}");
    assert_eq!(app.take_poison().await.len(), 1);
    app.finish().await;
}

#[tokio::test]
async fn a_started_job_taken_over_after_its_rules_changed_is_followed_not_refused() {
    let (app, id, job_id, settings) = running_then_its_runner_died().await;
    // Alice may no longer start it: the job she started runs on in Azure all the same.
    alice_may_no_longer_restart_web(&app);

    app.drain_after_crash(&app.worker_with(settings)).await;
    let text = app.final_text(&id, "*Completed*").await;
    assert!(text.contains("restarted"), "{text}");
    assert_eq!(app.slack_count(&id, "*Refused*"), 0);
    assert_eq!(app.arm.put_count(&job_id), 1, "started once");
    app.finish().await;
}

#[tokio::test]
async fn a_running_job_whose_message_came_back_too_often_is_followed_not_given_up_on() {
    let (app, id, _, mut settings) = running_then_its_runner_died().await;
    // Its second delivery is over this runner's limit: crashes and restarts of the runners
    // that followed a long job, not a message that cannot be handled.
    settings.max_dequeue = 1;
    app.drain_after_crash(&app.worker_with(settings)).await;
    let text = app.final_text(&id, "*Completed*").await;
    assert!(text.contains("restarted"), "{text}");
    assert_eq!(app.slack_count(&id, "gave up"), 0);
    assert!(app.take_poison().await.is_empty());
    app.finish().await;
}

#[tokio::test]
async fn a_delivery_over_the_limit_of_a_job_a_live_runner_holds_is_given_up_on_only_once_it_is_dead()
 {
    // Runner A holds the job (its heartbeat fresh) and left its message to come back, as after
    // a start that failed for now; the delivery that comes back is over the limit.
    let app = TestApp::spawn().await;
    let id = TestApp::short_id(&app.command(ALICE, OPS, "echo held").await);
    // Delivered once here (the peek), so B's is the second, over a limit of 1.
    let job = app.peek_jobs().await.remove(0);
    let mut settings = app.worker_settings();
    settings.max_dequeue = 1;
    settings.visibility = Duration::from_secs(2);
    let claimed = app
        .records()
        // A counts as alive for 5 s after its heartbeat, whatever B's settings say.
        .claim(
            &job,
            "runner-a",
            time::OffsetDateTime::now_utc(),
            Duration::from_secs(5),
        )
        .await
        .expect("claim");
    assert!(matches!(
        claimed,
        chatops_shared::records::Claim::Created(_)
    ));
    // Not given up on while A may be on it: poisoned then, its record still A's, nobody would
    // ever tell the requester. The message is left to come back.
    let b = app.worker_with(settings);
    assert_eq!(b.process_next().await, Ok(Step::Processed));
    assert_eq!(app.slack_count(&id, "gave up"), 0);
    assert!(
        app.take_poison().await.is_empty(),
        "not poisoned while A may be on it"
    );
    // Back once A's heartbeat has lapsed: given up on, and the requester told.
    app.process_until(&b, Duration::from_secs(30), "never given up on", || {
        app.slack_count(&id, "gave up") > 0
    })
    .await;
    let text = app.final_text(&id, "*Failed*").await;
    assert!(text.contains("gave up"), "{text}");
    assert_eq!(app.take_poison().await.len(), 1);
    assert!(record_of(&app, &id).await.record.reported);
    app.finish().await;
}

#[tokio::test]
async fn a_job_given_up_on_before_any_runner_recorded_it_is_recorded_failed_and_not_run_later() {
    let app = TestApp::spawn().await;
    let id = TestApp::short_id(&app.command(ALICE, OPS, "echo hi").await);
    let job = app.peek_jobs().await.remove(0);
    let mut settings = app.worker_settings();
    settings.max_dequeue = 0;
    app.drain(&app.worker_with(settings)).await;
    let text = app.final_text(&id, "*Failed*").await;
    assert!(text.contains("gave up"), "{text}");
    let record = record_of(&app, &id).await.record;
    assert_eq!(record.state, JobState::Failed);
    assert!(record.reported, "{record:#?}");
    // Another message for the job (a replay queued by a second ingress) does not run it.
    app.put_raw(&app.queue_text(&job)).await;
    app.drain(&app.worker()).await;
    assert_eq!(app.slack_count(&id, "*Completed*"), 0);
    assert_eq!(app.slack_count(&id, "*Failed*"), 1);
    assert_eq!(app.take_poison().await.len(), 1, "the first message");
    app.finish().await;
}

#[tokio::test]
async fn a_given_up_jobs_status_is_tried_again_while_slack_fails() {
    let app = TestApp::spawn().await;
    let id = TestApp::short_id(&app.command(ALICE, OPS, "echo hi").await);
    let mut settings = app.worker_settings();
    settings.max_dequeue = 0;
    // More failures than one post retries: tried again, as any final status is (its message
    // is on the poison queue by then: this is the one chance to tell the requester).
    app.slack
        .fail_next(chatops_e2e::slack::PathKind::ResponseUrl, 4, 500, "");
    app.drain(&app.worker_with(settings)).await;
    let text = app.final_text(&id, "*Failed*").await;
    assert!(text.contains("gave up"), "{text}");
    assert!(record_of(&app, &id).await.record.reported);
    assert_eq!(app.take_poison().await.len(), 1);
    app.finish().await;
}

/// A signed stop message, as the ingress queues for `/runbook stop`.
fn stop_message(app: &TestApp, target: &JobMessage, by: &str, signature: &str) -> JobMessage {
    JobMessage {
        job_id: job_id_from_signature(signature),
        kind: JobKind::Stop,
        target: Some(target.job_id),
        user_id: by.into(),
        user_name: by.to_lowercase(),
        response_url: Some(chatops_shared::secret::Secret::new(
            app.slack.response_url(),
        )),
        requested_at: time::OffsetDateTime::now_utc(),
        record_day: None,
        ..target.clone()
    }
}

#[tokio::test]
async fn stop_of_a_running_local_job_held_by_another_runner_kills_it_and_says_who() {
    let app = TestApp::spawn().await;
    let id = TestApp::short_id(&app.command(ALICE, OPS, "record n=1 pause=30").await);
    let holder = app.worker();
    let running = tokio::spawn(async move { holder.process_next().await });
    app.wait_for_script_start().await;

    let answer = app.command(ALICE, OPS, &format!("stop {id}")).await;
    assert_eq!(answer.response_type(), "in_channel", "{answer:?}");
    assert!(answer.text().contains(&id), "{answer:?}");
    assert_eq!(app.worker().process_next().await, Ok(Step::Processed));
    let text = app.final_text(&id, "*Stopped*").await;
    assert!(text.contains(&format!("Stopped by <@{ALICE}>")), "{text}");
    let _ = running.await;
    assert_eq!(
        lines(&app, "record.log"),
        0,
        "the script was killed before its end"
    );
    let record = record_of(&app, &id).await;
    assert_eq!(record.record.state, JobState::Stopped);
    assert_eq!(
        record.record.stop.as_ref().map(|s| s.by.as_str()),
        Some(ALICE)
    );
    app.finish().await;
}

#[tokio::test]
async fn stop_of_an_automation_job_asks_azure_and_reports_stopped() {
    let app = TestApp::spawn().await;
    app.arm.script("Restart-WebApp", Script::never_ends());
    let id = TestApp::short_id(&app.command(ALICE, OPS, "restart-web prod").await);
    let job = app.peek_jobs().await.remove(0);
    let holder = app.worker();
    let following = tokio::spawn(async move { holder.process_next().await });
    app.wait_for_slack(&id, "running").await;

    let answer = app.command(ALICE, OPS, &format!("stop {id}")).await;
    assert_eq!(answer.response_type(), "in_channel", "{answer:?}");
    assert_eq!(app.worker().process_next().await, Ok(Step::Processed));
    assert!(
        app.arm.stop_count(&job.job_id.to_string()) >= 1,
        "Azure was asked to stop the job"
    );
    let text = app.final_text(&id, "*Stopped*").await;
    assert!(text.contains(&format!("Stopped by <@{ALICE}>")), "{text}");
    let _ = following.await;
    app.finish().await;
}

#[tokio::test]
async fn a_stop_while_the_start_waits_at_azures_limit_starts_nothing() {
    let app = TestApp::spawn().await;
    app.arm.script("Restart-WebApp", Script::never_ends());
    // Every PUT is refused (429) until the card says the job waits, asking for 8 s: the
    // runner waits that long before its next try, time enough for the stop to reach it.
    app.arm.set_retry_after(8);
    app.arm.fail_next(1000, 429);
    let id = TestApp::short_id(&app.command(ALICE, OPS, "restart-web prod").await);
    let job = app.peek_jobs().await.remove(0);
    let holder = app.worker();
    let waiting = tokio::spawn(async move { holder.process_next().await });
    app.wait_for_slack(&id, "*waiting*").await;
    // Azure would take the next start: the stop must keep it from being sent.
    app.arm.recover();

    let answer = app.command(ALICE, OPS, &format!("stop {id}")).await;
    assert_eq!(answer.response_type(), "in_channel", "{answer:?}");
    assert_eq!(app.worker().process_next().await, Ok(Step::Processed));
    let text = app.final_text(&id, "*Stopped*").await;
    assert!(
        text.contains("Stopped before Azure Automation started it"),
        "{text}"
    );
    assert!(
        app.arm.job(&job.job_id.hyphenated().to_string()).is_none(),
        "no Automation job was created"
    );
    let _ = waiting.await;
    app.finish().await;
}

/// Once Azure has an Automation job, stops reach it through Azure (the runner that takes the
/// stop message asks), so its holder reads the record only to renew the heartbeat, not every
/// `record_poll`: following many jobs does not cost a record read per job every 2 s.
#[tokio::test]
async fn the_holder_of_an_automation_job_reads_its_record_only_for_the_heartbeat() {
    let app = TestApp::spawn().await;
    let run = Duration::from_secs(4);
    app.arm
        .script("Restart-WebApp", Script::runs_for("restarted", run, run));
    let id = TestApp::short_id(&app.command(ALICE, OPS, "restart-web prod").await);
    let counted = Arc::new(CountingStore::new(
        app.blob_store(chatops_shared::records::DEFAULT_RECORDS_CONTAINER),
    ));
    let records = Records::new(
        counted.clone(),
        chatops_shared::records::DEFAULT_RETENTION_DAYS,
    );
    let mut settings = app.worker_settings();
    settings.record_poll = Duration::from_millis(100);
    settings.visibility = Duration::from_secs(6);
    let worker = app.worker_on_records(app.runner_queue(), records, settings.clone());
    assert_eq!(worker.process_next().await, Ok(Step::Processed));
    app.final_text(&id, "*Completed*").await;

    // Polled at `record_poll`, 4 s would take about 40 reads; at the heartbeat (every 2 s) a
    // few, plus the fixed calls of owning, starting, ending and reporting the job.
    let calls = counted.calls();
    let polled = (run.as_millis() / settings.record_poll.as_millis()) as usize;
    assert!(
        calls < polled / 2,
        "{calls} record calls for a {run:?} job (polling every {:?} would be about {polled})",
        settings.record_poll
    );
    let record = record_of(&app, &id).await;
    assert_eq!(record.record.state, JobState::Completed);
    app.finish().await;
}

#[tokio::test]
async fn a_stop_from_someone_who_may_not_is_refused_by_the_runner_too() {
    let app = TestApp::spawn().await;
    let id = TestApp::short_id(&app.command(ALICE, OPS, "record n=1 pause=3").await);
    let job = app.peek_jobs().await.remove(0);
    let holder = app.worker();
    let running = tokio::spawn(async move { holder.process_next().await });
    app.wait_for_script_start().await;

    // Signed like any message (as if the ingress had let it through): the runner checks again.
    let stop = stop_message(&app, &job, BOB, "v0=stop-3");
    app.put_raw(&app.queue_text(&stop)).await;
    assert_eq!(app.worker().process_next().await, Ok(Step::Processed));
    let _ = running.await;
    app.final_text(&id, "*Completed*").await;
    let notice = app.final_text(&stop.short_id(), "may not stop").await;
    assert!(notice.contains(&id), "{notice}");
    let posted = app.wait_for_slack(&stop.short_id(), "may not stop").await;
    assert!(
        posted
            .iter()
            .all(|m| m.raw.contains(r#""response_type":"ephemeral""#)),
        "the refusal is for Bob only: {posted:?}"
    );
    assert_eq!(record_of(&app, &id).await.record.stop, None);
    app.finish().await;
}

/// Today's lines of the audit log in `store`, as `chatops-runner audit export` gives them.
async fn todays_audit_lines(
    store: &Arc<dyn chatops_shared::blob::BlobStore>,
) -> Vec<serde_json::Value> {
    let today = time::OffsetDateTime::now_utc().date();
    let mut out = Vec::new();
    chatops_shared::audit::export::export(
        store.as_ref(),
        today,
        today.next_day().expect("tomorrow"),
        &mut out,
    )
    .await
    .expect("export");
    String::from_utf8_lossy(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

/// An audit log on the app's audit container, as a runner writes it: the container, the log
/// and its writer.
async fn runner_audit_log(
    app: &TestApp,
) -> (
    Arc<dyn chatops_shared::blob::BlobStore>,
    AuditLog,
    AuditWriter,
) {
    let store = app.blob_store(chatops_shared::audit::DEFAULT_AUDIT_CONTAINER);
    store.ensure_container().await.expect("audit container");
    let (audit, writer) = AuditLog::new(store.clone(), "test-runner".into());
    (store, audit, writer)
}

/// The runner writes a job's start and end to the audit log, and who stopped it.
#[tokio::test]
async fn the_runner_writes_the_start_the_end_and_the_stop_to_the_audit_log() {
    let app = TestApp::spawn().await;
    let (store, audit, writer) = runner_audit_log(&app).await;
    let id = TestApp::short_id(&app.command(ALICE, OPS, "record n=1 pause=30").await);
    let job = app.peek_jobs().await.remove(0);
    let holder = app.worker().with_audit(audit.clone());
    let running = tokio::spawn(async move { holder.process_next().await });
    app.wait_for_script_start().await;
    app.put_raw(&app.queue_text(&stop_message(&app, &job, ALICE, "v0=stop-4")))
        .await;
    assert_eq!(
        app.worker().with_audit(audit).process_next().await,
        Ok(Step::Processed)
    );
    app.final_text(&id, "*Stopped*").await;
    let _ = running.await;
    assert_eq!(writer.shutdown(Duration::from_secs(10)).await, 0);

    let lines = todays_audit_lines(&store).await;
    let of_job = |event: &str| {
        lines
            .iter()
            .filter(|l| l["event"] == event && l["job_id"] == job.job_id.to_string())
            .count()
    };
    assert_eq!(of_job("started"), 1, "{lines:#?}");
    assert_eq!(of_job("ended"), 1, "{lines:#?}");
    assert_eq!(of_job("stopped"), 1, "{lines:#?}");
    let ended = lines
        .iter()
        .find(|l| l["event"] == "ended")
        .expect("ended line");
    assert_eq!(ended["state"], "stopped");
    let stopped = lines
        .iter()
        .find(|l| l["event"] == "stopped")
        .expect("stopped line");
    assert_eq!(stopped["by"], ALICE);
    app.finish().await;
}

#[tokio::test]
async fn a_job_given_up_on_has_its_end_in_the_audit_log() {
    let app = TestApp::spawn().await;
    let (store, audit, writer) = runner_audit_log(&app).await;
    let id = TestApp::short_id(&app.command(ALICE, OPS, "echo hi").await);
    let job = app.peek_jobs().await.remove(0);
    let mut settings = app.worker_settings();
    settings.max_dequeue = 0;
    app.drain(&app.worker_with(settings).with_audit(audit))
        .await;
    app.final_text(&id, "gave up").await;
    assert_eq!(writer.shutdown(Duration::from_secs(10)).await, 0);
    let lines = todays_audit_lines(&store).await;
    let ended: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["event"] == "ended" && l["job_id"] == job.job_id.to_string())
        .collect();
    assert_eq!(ended.len(), 1, "{lines:#?}");
    assert_eq!(ended[0]["state"], "failed");
    assert_eq!(app.take_poison().await.len(), 1);
    app.finish().await;
}

/// A runner whose job was taken over by another runner (its record names the other runner
/// now, with a fresh heartbeat) lets the job go: it posts no final status of its own.
#[tokio::test]
async fn a_runner_that_was_taken_for_dead_lets_the_job_go_without_posting() {
    let app = TestApp::spawn().await;
    let id = TestApp::short_id(&app.command(ALICE, OPS, "record n=1 pause=2").await);
    let holder = app.worker();
    let running = tokio::spawn(async move { holder.process_next().await });
    app.wait_for_script_start().await;
    let current = record_of(&app, &id).await;
    // Conditionally, like a runner taking over (again from a fresh read when the holder wrote
    // meanwhile: its start time, a heartbeat).
    app.records()
        .update(&current.name, |record| {
            record.holder = Some(chatops_shared::records::Holder {
                runner: "another-runner".into(),
                heartbeat_at: time::OffsetDateTime::now_utc(),
                dead_after_ms: None,
            });
            true
        })
        .await
        .expect("take the job over");
    let _ = running.await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.slack_count(&id, "*Completed*"), 0, "no post");
    let record = record_of(&app, &id).await.record;
    assert_eq!(record.state, JobState::Running, "left to the new holder");
    assert_eq!(
        record.holder.map(|h| h.runner).as_deref(),
        Some("another-runner")
    );
    // Its message is the new holder's to delete: left on the queue, hidden.
    app.forget_queue();
}

/// A message given up on (too many deliveries) whose job ended unreported gets the job's real
/// end posted, not "gave up".
#[tokio::test]
async fn giving_up_on_a_message_whose_job_ended_unreported_posts_the_real_end() {
    let app = TestApp::spawn().await;
    let id = TestApp::short_id(&app.command(ALICE, OPS, "record n=1").await);
    let job = app.peek_jobs().await.remove(0);
    app.drain(&app.worker()).await;
    app.final_text(&id, "*Completed*").await;
    let current = wait_for_record(&app, &id, "reported", |r| r.record.reported).await;
    // As if its runner had died after writing the end and before posting it.
    let mut unreported = current.record.clone();
    unreported.reported = false;
    unreported.holder = Some(chatops_shared::records::Holder {
        runner: "dead-runner".into(),
        heartbeat_at: time::OffsetDateTime::now_utc() - Duration::from_secs(3600),
        dead_after_ms: None,
    });
    app.records()
        .replace(&current, unreported)
        .await
        .expect("rewrite");
    app.put_raw(&app.queue_text(&job)).await;
    let mut settings = app.worker_settings();
    settings.max_dequeue = 0;
    app.drain(&app.worker_with(settings)).await;
    assert_eq!(
        app.slack_count(&id, "*Completed*"),
        2,
        "the real end, again"
    );
    assert_eq!(app.slack_count(&id, "gave up"), 0);
    assert!(record_of(&app, &id).await.record.reported);
    assert_eq!(
        app.take_poison().await.len(),
        1,
        "the message is on the poison queue"
    );
    app.finish().await;
}

#[tokio::test]
async fn a_claimed_record_says_from_the_start_when_its_holder_counts_as_dead() {
    let app = TestApp::spawn().await;
    app.command(ALICE, OPS, "echo hi").await;
    // Off the queue: no runner is to wait on the holder claimed below.
    let job = app.take_jobs().await.remove(0);
    let records = app.records();
    let now = time::OffsetDateTime::now_utc();
    let claimed = records
        .claim(&job, "r-slow", now, Duration::from_secs(600))
        .await
        .expect("claim");
    assert!(matches!(
        claimed,
        chatops_shared::records::Claim::Created(_)
    ));
    let read = records
        .read(&chatops_shared::records::record_name_of(&job))
        .await
        .expect("read")
        .expect("the record");
    let holder = read.record.holder.clone().expect("a holder");
    assert_eq!(holder.dead_after_ms, Some(600_000));
    // A reader whose own timeout is 60 s sees this holder alive 2 minutes on.
    let later = now + Duration::from_secs(120);
    assert!(!read.record.holder_is_dead(later, Duration::from_secs(60)));
    app.finish().await;
}
