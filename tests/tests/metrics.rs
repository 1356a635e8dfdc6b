//! `GET /metrics` on both service binaries: after commands go through, the counters an operator
//! watches have moved (command outcomes, answer times, jobs, dispatch latency, ARM answers
//! including a 429 and its retry, Slack posts, storage tries, queue depth).

// Test code: a failed step should stop the test with its message.
#![allow(clippy::expect_used)]

use chatops_e2e::app::{ALICE, OPS, TestApp};
use chatops_e2e::process::Service;
use std::time::Duration;

/// Posts a signed slash command to an ingress process; returns its JSON answer.
async fn command(app: &TestApp, addr: &str, text: &str) -> serde_json::Value {
    let body = app.form(ALICE, OPS, text);
    app.command_to(addr, body).await
}

/// `GET url`: status and body.
async fn get(app: &TestApp, url: &str) -> (u16, String) {
    let response = app.client.get(url).send().await.expect("an answer");
    let status = response.status().as_u16();
    (status, response.text().await.expect("a body"))
}

/// The value of the sample `series` (name and labels exactly as written) in `text`.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

fn job_id(answer: &serde_json::Value) -> String {
    let text = answer["text"].as_str().unwrap_or_default();
    text.rsplit("job `")
        .next()
        .and_then(|s| s.split('`').next())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn both_services_count_what_an_operator_needs_on_metrics() {
    let app = TestApp::spawn().await;
    let mut env = app.service_env();
    env.extend(app.arm.env());
    env.push(("CHATOPS_AUTOMATION_POLL_INTERVAL".into(), "100ms".into()));
    env.push(("CHATOPS_ARM_READS_PER_SECOND".into(), "7".into()));
    let mut ingress = Service::start("chatops-ingress", &env);
    let mut runner = Service::start("chatops-runner", &env);
    let addr = ingress.bound_addr().await;
    let runner_addr = runner.bound_addr().await;
    let line = ingress
        .wait_for_line(|l| l.contains("\"metrics_addr\":"), Duration::from_secs(30))
        .await;
    let line: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
    let metrics_addr = line["metrics_addr"]
        .as_str()
        .expect("metrics_addr")
        .to_owned();

    // Not served with the Slack endpoint.
    let (status, _) = get(&app, &format!("http://{addr}/metrics")).await;
    assert_eq!(status, 404);

    // One local job, one Automation job whose first ARM call is throttled, one refusal.
    app.arm.fail_next(1, 429);
    let local = command(&app, &addr, "echo metrics").await;
    let automation = command(&app, &addr, "restart-web prod").await;
    let refused = command(&app, &addr, "no-such-runbook").await;
    assert_eq!(refused["response_type"], "ephemeral", "{refused}");
    // A forged interaction counts as unverified.
    let forged = app
        .client
        .post(format!("http://{addr}/slack/interactions"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            "x-slack-request-timestamp",
            time::OffsetDateTime::now_utc().unix_timestamp().to_string(),
        )
        .header("x-slack-signature", "v0=00")
        .body("payload=%7B%7D")
        .send()
        .await
        .expect("the ingress answers");
    assert_eq!(forged.status().as_u16(), 401);
    // Job control counts too: a listing, and a stop of a job nobody can see.
    command(&app, &addr, "status").await;
    let unknown = command(&app, &addr, "stop 1a2b3c4d").await;
    assert!(
        unknown["text"]
            .as_str()
            .is_some_and(|t| t.contains("no job")),
        "{unknown}"
    );
    app.final_text(&job_id(&local), "*Completed*").await;
    app.final_text(&job_id(&automation), "*Completed*").await;

    let (status, text) = get(&app, &format!("http://{metrics_addr}/metrics")).await;
    assert_eq!(status, 200);
    assert_eq!(
        sample(
            &text,
            r#"chatops_commands_total{outcome="accepted",reason=""}"#
        ),
        2.0
    );
    assert_eq!(
        sample(
            &text,
            r#"chatops_commands_total{outcome="rejected",reason="unknown_runbook"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            r#"chatops_commands_total{outcome="answered",reason="status"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            r#"chatops_commands_total{outcome="rejected",reason="unknown_job"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            r#"chatops_commands_total{outcome="unverified",reason=""}"#
        ),
        1.0
    );
    assert_eq!(sample(&text, "chatops_ack_seconds_count"), 6.0);
    assert!(sample(&text, r#"chatops_storage_requests_total{status="ok"}"#) >= 2.0);

    // The runner's final post is on its way once the Slack double has it; the guard drops
    // right after, so give the gauge a moment. A copy of a message (a Put Message retried
    // after a slow answer on a loaded machine) is deleted at the runner's next poll.
    let runner_text = async {
        for _ in 0..100 {
            let (status, text) = get(&app, &format!("http://{runner_addr}/metrics")).await;
            assert_eq!(status, 200);
            if sample(&text, "chatops_jobs_in_flight") == 0.0
                && sample(&text, r#"chatops_queue_depth{queue="jobs"}"#) == 0.0
            {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("jobs still in flight after both finished");
    };
    let text = runner_text.await;
    assert_eq!(
        sample(&text, r#"chatops_jobs_finished_total{state="Completed"}"#),
        2.0
    );
    assert_eq!(sample(&text, "chatops_dispatch_seconds_count"), 2.0);
    assert_eq!(
        sample(&text, r#"chatops_arm_requests_total{status="429"}"#),
        1.0
    );
    assert!(sample(&text, r#"chatops_arm_requests_total{status="200"}"#) >= 1.0);
    assert!(sample(&text, r#"chatops_retries_total{target="arm"}"#) >= 1.0);
    assert!(
        sample(
            &text,
            r#"chatops_slack_requests_total{api="post",status="200"}"#
        ) >= 2.0
    );
    // No read was refused: the budget is the configured one.
    assert_eq!(sample(&text, "chatops_arm_read_budget"), 7.0);
    assert_eq!(sample(&text, r#"chatops_queue_depth{queue="jobs"}"#), 0.0);
    assert_eq!(sample(&text, "chatops_poison_moves_total"), 0.0);

    assert_eq!(ingress.terminate(Duration::from_secs(15)).await, Some(0));
    assert_eq!(runner.terminate(Duration::from_secs(15)).await, Some(0));
    app.finish().await;
}

#[tokio::test]
async fn a_command_is_traced_from_the_ingress_to_the_runner_by_its_traceparent() {
    let app = TestApp::spawn().await;
    let env = app.service_env();
    let mut ingress = Service::start("chatops-ingress", &env);
    let addr = ingress.bound_addr().await;
    let answer = command(&app, &addr, "echo traced").await;
    let short = job_id(&answer);
    let job = app.take_jobs().await.pop().expect("the job was queued");
    let traceparent = job
        .traceparent
        .clone()
        .expect("a traceparent in the job message");
    let trace_id = chatops_shared::telemetry::trace::trace_id(&traceparent)
        .expect("a well-formed traceparent")
        .to_owned();
    let queued = ingress
        .wait_for_line(|l| l.contains("job queued"), Duration::from_secs(10))
        .await;
    let queued: serde_json::Value = serde_json::from_str(&queued).expect("JSON log line");
    assert_eq!(queued["trace_id"], trace_id.as_str(), "{queued}");
    assert!(
        queued.to_string().contains(&job.job_id.to_string()),
        "{queued}"
    );

    // The runner's lines about the job carry the same trace id next to the job id.
    app.put_raw(&app.queue_text(&job)).await;
    let mut runner = Service::start("chatops-runner", &env);
    app.final_text(&short, "*Completed*").await;
    let line = runner
        .wait_for_line(|l| l.contains("job finished"), Duration::from_secs(10))
        .await;
    assert!(line.contains(&trace_id), "{line}");
    assert!(line.contains(&job.job_id.to_string()), "{line}");

    assert_eq!(ingress.terminate(Duration::from_secs(15)).await, Some(0));
    assert_eq!(runner.terminate(Duration::from_secs(15)).await, Some(0));
    app.finish().await;
}
