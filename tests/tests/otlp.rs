//! OTLP push (`OTEL_EXPORTER_OTLP_ENDPOINT`): the service binaries send their metrics (the
//! runner's queue depth sampled on the push interval, with nothing scraping) and spans
//! to a collector (an OTLP/HTTP receiver test double) over http/protobuf; one command is one
//! trace from the ingress to the runner; a collector that never answers costs the ack nothing,
//! one that is down is logged about without its address;
//! without the variable, no exporter thread runs.

// Test code: a failed step should stop the test with its message.
#![allow(clippy::expect_used)]

use chatops_e2e::app::{ALICE, OPS, TestApp};
use chatops_e2e::otlp::{Blackhole, OtlpReceiver};
use chatops_e2e::process::Service;
use std::time::{Duration, Instant};

/// What a collector may take its time to receive: a few export intervals.
const DELIVERY: Duration = Duration::from_secs(20);

/// The services' environment, pushing to `endpoint` every few hundred milliseconds.
fn env_pushing_to(app: &TestApp, endpoint: &str) -> Vec<(String, String)> {
    let mut env = app.service_env();
    env.extend(
        [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
            ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    env
}

/// Threads of process `pid` the OpenTelemetry SDK runs (their names start `OpenTelemetry`).
fn exporter_threads(pid: u32) -> usize {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the process's threads");
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("OpenTelemetry"))
        .count()
}

#[tokio::test]
async fn the_collector_receives_metrics_and_one_trace_per_command_from_both_services() {
    let app = TestApp::spawn().await;
    let collector = OtlpReceiver::start().await;
    let env = env_pushing_to(&app, &collector.endpoint());
    let mut ingress = Service::start("chatops-ingress", &env);
    let addr = ingress.bound_addr().await;

    app.command_to(&addr, app.form(ALICE, OPS, "echo pushed"))
        .await;
    let job = app.take_jobs().await.pop().expect("the job was queued");
    let job_id = job.job_id.to_string();

    // The commands counter, under the same name a collector's Prometheus export gives back.
    let accepted = collector
        .wait_for_point(
            |p| {
                p.service == "chatops-ingress"
                    && p.metric == "chatops_commands"
                    && p.attributes.get("outcome").map(String::as_str) == Some("accepted")
            },
            1.0,
            DELIVERY,
        )
        .await;
    assert_eq!(accepted.value, 1.0, "{accepted:?}");
    collector
        .wait_for_point(
            |p| p.service == "chatops-ingress" && p.metric == "chatops_ack_seconds",
            1.0,
            DELIVERY,
        )
        .await;

    // The command's span carries its job id, and the job message continues its trace.
    let ingress_span = collector
        .wait_for_span(
            |s| s.service == "chatops-ingress" && s.attributes.get("job_id") == Some(&job_id),
            DELIVERY,
        )
        .await;
    let traceparent = job.traceparent.clone().expect("a traceparent");
    assert_eq!(
        chatops_shared::telemetry::trace::trace_id(&traceparent),
        Some(ingress_span.trace_id.as_str()),
        "{ingress_span:?}"
    );

    // The runner's job span is in the same trace.
    app.put_raw(&app.queue_text(&job)).await;
    let mut runner = Service::start("chatops-runner", &env);
    app.final_text(&job.short_id(), "*Completed*").await;
    let runner_span = collector
        .wait_for_span(
            |s| {
                s.service == "chatops-runner"
                    && s.name == "job"
                    && s.attributes.get("job_id") == Some(&job_id)
            },
            DELIVERY,
        )
        .await;
    assert_eq!(runner_span.trace_id, ingress_span.trace_id);
    collector
        .wait_for_point(
            |p| {
                p.service == "chatops-runner"
                    && p.metric == "chatops_jobs_finished"
                    && p.attributes.get("state").map(String::as_str) == Some("Completed")
            },
            1.0,
            DELIVERY,
        )
        .await;
    // Sampled every push interval: nothing scrapes the runner's `/metrics` here.
    collector
        .wait_for_point(
            |p| {
                p.service == "chatops-runner"
                    && p.metric == "chatops_queue_depth"
                    && p.attributes.get("queue").map(String::as_str) == Some("jobs")
            },
            0.0,
            DELIVERY,
        )
        .await;
    assert!(exporter_threads(ingress.pid().expect("running")) > 0);
    assert_eq!(collector.malformed(), 0);

    assert_eq!(ingress.terminate(Duration::from_secs(15)).await, Some(0));
    assert_eq!(runner.terminate(Duration::from_secs(15)).await, Some(0));
    app.finish().await;
}

#[tokio::test]
async fn a_collector_that_never_answers_does_not_delay_the_ack() {
    let app = TestApp::spawn().await;
    let collector = Blackhole::start().await;
    let env = env_pushing_to(&app, &collector.endpoint());
    let mut ingress = Service::start("chatops-ingress", &env);
    let addr = ingress.bound_addr().await;

    app.command_to(&addr, app.form(ALICE, OPS, "echo first"))
        .await;
    let deadline = Instant::now() + DELIVERY;
    while collector.connections() < 2 {
        assert!(
            Instant::now() < deadline,
            "the ingress never tried to export"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Exports of metrics and spans are hanging now; commands are answered as ever.
    for n in 0..3 {
        let started = Instant::now();
        let answer = app
            .command_to(&addr, app.form(ALICE, OPS, &format!("echo while-down-{n}")))
            .await;
        assert!(answer.to_string().contains("job `"), "{answer}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "ack took {:?}",
            started.elapsed()
        );
    }
    assert_eq!(app.take_jobs().await.len(), 4);
    // Shutting down gives up on the last export after a bounded wait.
    assert_eq!(ingress.terminate(Duration::from_secs(15)).await, Some(0));
    app.finish().await;
}

#[tokio::test]
async fn without_an_endpoint_no_exporter_thread_runs() {
    let app = TestApp::spawn().await;
    let mut ingress = Service::start("chatops-ingress", &app.service_env());
    let addr = ingress.bound_addr().await;
    app.command_to(&addr, app.form(ALICE, OPS, "echo quiet"))
        .await;
    assert_eq!(app.take_jobs().await.len(), 1);
    assert_eq!(exporter_threads(ingress.pid().expect("running")), 0);
    assert_eq!(ingress.terminate(Duration::from_secs(15)).await, Some(0));
    app.finish().await;
}

#[tokio::test]
async fn a_collector_that_refuses_connections_is_logged_about_without_its_address() {
    let app = TestApp::spawn().await;
    // A port nobody listens on any more.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .local_addr()
        .expect("its address");
    let endpoint = format!("http://user:hunter2@{closed}");
    let env = env_pushing_to(&app, &endpoint);
    let mut ingress = Service::start("chatops-ingress", &env);
    let addr = ingress.bound_addr().await;
    let answer = app
        .command_to(&addr, app.form(ALICE, OPS, "echo refused"))
        .await;
    assert!(answer.to_string().contains("job `"), "{answer}");
    assert_eq!(app.take_jobs().await.len(), 1);

    let failed = |l: &str| l.contains("\"level\":\"ERROR\"") && l.contains("export");
    ingress.wait_for_line(failed, DELIVERY).await;
    let errors: Vec<String> = ingress.output().into_iter().filter(|l| failed(l)).collect();
    for line in &errors {
        assert!(
            !line.contains(&closed.port().to_string()) && !line.contains("hunter2"),
            "{line}"
        );
    }
    assert_eq!(ingress.terminate(Duration::from_secs(15)).await, Some(0));
    app.finish().await;
}
