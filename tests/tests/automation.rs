//! `ArmClient` and `AutomationExecutor` against the ARM test server: happy path, exactly-once
//! starts, refusals, retries, throttling, failing, suspended and timed-out jobs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use chatops_e2e::app::{ALICE, OPS, TestApp};
use chatops_e2e::arm::{
    ACCOUNT, ArmServer, End, RESOURCE_GROUP, SUBSCRIPTION, Script, StaticToken,
};
use chatops_runner::executor::arm::{ArmClient, CreateResult, JobStatus, RetryPolicy};
use chatops_runner::executor::automation::{AutomationExecutor, PollSchedule};
use chatops_runner::executor::{
    Executor, FinalState, JobRequest, Outcome, Progress, TransientError,
};
use chatops_shared::job::short_id;
use reqwest::StatusCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Retries quickly: tests must not wait for production backoffs.
fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 5,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        max_retry_after: Duration::from_secs(60),
    }
}

fn client(server: &ArmServer) -> Arc<ArmClient> {
    client_with(server, server.credential())
}

fn client_with(server: &ArmServer, credential: Arc<dyn TokenCredential>) -> Arc<ArmClient> {
    Arc::new(
        ArmClient::new(&server.config(), credential)
            .unwrap()
            .with_retry(fast_retry()),
    )
}

fn executor(client: Arc<ArmClient>) -> AutomationExecutor {
    AutomationExecutor::new(client)
        .with_poll(PollSchedule::fixed(Duration::from_millis(20)))
        .with_stop_wait(Duration::from_secs(2))
}

fn request(runbook: &str, params: &[(&str, &str)]) -> JobRequest {
    JobRequest {
        job_id: Uuid::new_v4(),
        target: runbook.to_owned(),
        params: params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        secret: Vec::new(),
        timeout: Duration::from_secs(30),
        redelivered: false,
        stop: chatops_runner::executor::StopSignal::never(),
    }
}

/// Runs the job and collects the progress it reported.
async fn run(
    executor: &AutomationExecutor,
    request: &JobRequest,
) -> (Result<Outcome, TransientError>, Vec<Progress>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let result = tokio::time::timeout(Duration::from_secs(20), executor.run(request, tx))
        .await
        .expect("the executor finished in time");
    let mut progress = Vec::new();
    while let Ok(p) = rx.try_recv() {
        progress.push(p);
    }
    (result, progress)
}

fn name(request: &JobRequest) -> String {
    request.job_id.hyphenated().to_string()
}

#[tokio::test]
async fn happy_path_reports_output_and_progress() {
    let server = ArmServer::start().await;
    server.script("Hello-World", Script::completes("hello\nworld\n"));
    let exec = executor(client(&server));
    let req = request("Hello-World", &[("name", "Ada"), ("count", "3")]);

    let (result, progress) = run(&exec, &req).await;

    let outcome = result.unwrap();
    assert_eq!(outcome.state, FinalState::Completed);
    assert_eq!(outcome.output, "hello\nworld\n");
    assert_eq!(outcome.error, None);
    let started_at = outcome.started_at.expect("a start time");
    assert!(outcome.ended_at >= started_at);
    assert_eq!(
        progress,
        vec![Progress::Running {
            started_at,
            pgid: None
        }]
    );

    let jobs = server.jobs();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].name, name(&req));
    assert_eq!(jobs[0].runbook, "Hello-World");
    assert_eq!(jobs[0].params.get("name").map(String::as_str), Some("Ada"));
    assert_eq!(jobs[0].params.get("count").map(String::as_str), Some("3"));
    assert_eq!(jobs[0].status, "Completed");
    assert_eq!(server.put_count(&name(&req)), 1);
    // Every ARM call passed the token and api-version checks.
    assert!(server.requests().iter().all(|r| r.status.is_success()));
}

#[tokio::test]
async fn a_start_refused_for_a_while_counts_toward_the_jobs_timeout() {
    let server = ArmServer::start().await;
    server.script(
        "Hello-World",
        Script::runs_for("hello\n", Duration::from_secs(2), Duration::from_secs(2)),
    );
    // Two 429s that each ask for a second: about 2 s before Azure takes the job.
    server.fail_next(2, 429);
    let exec = executor(client(&server));
    let req = JobRequest {
        timeout: Duration::from_secs(3),
        ..request("Hello-World", &[])
    };
    let (result, _) = run(&exec, &req).await;
    let outcome = result.unwrap();
    // 2 s waiting and 2 s running: past the 3 s limit.
    assert_eq!(outcome.state, FinalState::TimedOut, "{outcome:?}");
}

#[tokio::test]
async fn a_refused_start_waits_as_long_as_azure_asks() {
    let server = ArmServer::start().await;
    server.script("Hello-World", Script::completes("hello\n"));
    // Longer than the client waits out itself: the executor's own retry, which shows the job
    // waiting, waits it.
    server.set_retry_after(6);
    server.fail_next(1, 429);
    let exec = executor(client(&server));
    let (result, progress) = run(&exec, &request("Hello-World", &[])).await;
    assert_eq!(result.unwrap().state, FinalState::Completed);
    assert!(
        progress
            .iter()
            .any(|p| matches!(p, Progress::Waiting { .. })),
        "{progress:?}"
    );
    let puts: Vec<Instant> = server
        .requests()
        .into_iter()
        .filter(|r| r.method == reqwest::Method::PUT)
        .map(|r| r.at)
        .collect();
    assert_eq!(puts.len(), 2, "refused, then taken");
    assert!(
        puts[1].duration_since(puts[0]) >= Duration::from_secs(6),
        "{:?}",
        puts[1].duration_since(puts[0])
    );
}

#[tokio::test]
async fn an_output_that_cannot_be_read_is_said_not_shown_as_empty() {
    let server = ArmServer::start().await;
    server.script(
        "Hello-World",
        Script {
            output_forbidden: true,
            ..Script::completes("hello\n")
        },
    );
    let exec = executor(client(&server));
    let (result, _) = run(&exec, &request("Hello-World", &[])).await;
    let outcome = result.unwrap();
    assert_eq!(outcome.state, FinalState::Completed);
    assert!(
        outcome
            .output
            .contains("The job's output could not be read from Azure Automation (403: the runner's identity lacks permission"),
        "{:?}",
        outcome.output
    );
    // ARM's message names the subscription, the scope and the identity: the log's, not the
    // channel's.
    for arm_detail in ["AuthorizationFailed", "subscriptions", "object id"] {
        assert!(!outcome.output.contains(arm_detail), "{:?}", outcome.output);
    }
}

#[tokio::test]
async fn an_existing_job_is_followed_not_started_again() {
    let server = ArmServer::start().await;
    server.script("Hello-World", Script::completes("from the first runner"));
    let mut req = request("Hello-World", &[]);
    req.redelivered = true;
    // An earlier runner started the job and died.
    server.seed_job(&name(&req), "Hello-World");
    let exec = executor(client(&server));

    let (result, progress) = run(&exec, &req).await;

    let outcome = result.unwrap();
    assert_eq!(outcome.state, FinalState::Completed);
    assert_eq!(outcome.output, "from the first runner");
    assert_eq!(progress.len(), 1);
    assert_eq!(server.put_count(&name(&req)), 1, "one PUT, answered 409");
    assert_eq!(server.jobs().len(), 1, "no job under another name");
    let conflicts = server
        .requests()
        .iter()
        .filter(|r| r.status == StatusCode::CONFLICT)
        .count();
    assert_eq!(conflicts, 1);
}

#[tokio::test]
async fn running_the_same_request_twice_starts_one_job() {
    let server = ArmServer::start().await;
    server.script("Hello-World", Script::completes("once"));
    let exec = executor(client(&server));
    let req = request("Hello-World", &[]);

    let first = run(&exec, &req).await.0.unwrap();
    let second = run(&exec, &req).await.0.unwrap();

    assert_eq!(first.state, FinalState::Completed);
    assert_eq!(second.state, FinalState::Completed);
    assert_eq!(second.output, "once");
    assert_eq!(server.jobs().len(), 1);
    assert_eq!(server.put_count(&name(&req)), 2);
}

#[tokio::test]
async fn a_put_whose_answer_was_lost_is_retried_safely() {
    let server = ArmServer::start().await;
    server.script("Hello-World", Script::completes("ok"));
    // The job is created, but the runner sees a 500 and retries the PUT: 409, followed.
    server.fail_next_put_after_create(500);
    let exec = executor(client(&server));
    let req = request("Hello-World", &[]);

    let outcome = run(&exec, &req).await.0.unwrap();

    assert_eq!(outcome.state, FinalState::Completed);
    assert_eq!(server.jobs().len(), 1);
    assert_eq!(server.put_count(&name(&req)), 2);
}

#[tokio::test]
async fn unknown_runbook_fails_with_a_plain_reason() {
    let server = ArmServer::start().await;
    let exec = executor(client(&server));
    let req = request("No-Such-Runbook", &[]);

    let (result, progress) = run(&exec, &req).await;

    let outcome = result.unwrap();
    assert_eq!(outcome.state, FinalState::Failed);
    assert_eq!(
        outcome.error.as_deref(),
        Some(
            format!(
                "Azure refused to start the runbook (404: no such runbook or job in the Automation account); \
                 an operator can find the details in the runner's log under job {}",
                short_id(&req.job_id)
            )
            .as_str()
        )
    );
    assert_eq!(outcome.started_at, None);
    assert!(progress.is_empty());
    assert!(server.jobs().is_empty());
}

#[tokio::test]
async fn forbidden_fails_with_a_role_hint_and_no_azure_ids_in_the_channel() {
    let server = ArmServer::start().await;
    server.script("Restart-Service", Script::forbidden());
    let exec = executor(client(&server));
    let req = request("Restart-Service", &[]);

    let outcome = run(&exec, &req).await.0.unwrap();

    assert_eq!(outcome.state, FinalState::Failed);
    let error = outcome.error.clone().unwrap();
    assert!(
        error.starts_with(
            "Azure refused to start the runbook (403: the runner's identity lacks permission"
        ),
        "{error}"
    );
    assert!(error.contains("\"Automation Job Operator\""), "{error}");
    assert!(error.contains("\"Automation Runbook Operator\""), "{error}");
    assert!(
        error.ends_with(&format!("under job {}", short_id(&req.job_id))),
        "{error}"
    );
    let message = chatops_runner::notify::render::text(
        &job_message(&req),
        &chatops_runner::notify::Update::Finished(outcome),
    );
    // The ids in ARM's refusal body (Script::forbidden) stay out of the channel.
    for id in [
        "11111111-2222-3333-4444-555555555555",
        SUBSCRIPTION,
        RESOURCE_GROUP,
        ACCOUNT,
        "Microsoft.Automation",
        "AuthorizationFailed",
        server.token(),
    ] {
        assert!(!message.contains(id), "`{id}` in {message}");
    }
}

#[tokio::test]
async fn bad_parameters_fail_with_a_plain_reason() {
    let server = ArmServer::start().await;
    server.script(
        "Needs-Params",
        Script::refused(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"code": "BadRequest", "message": "{\"Message\":\"Parameter 'vm' is mandatory.\"}"}),
        ),
    );
    let exec = executor(client(&server));

    let outcome = run(&exec, &request("Needs-Params", &[])).await.0.unwrap();

    assert_eq!(outcome.state, FinalState::Failed);
    let error = outcome.error.unwrap();
    assert!(
        error.starts_with(
            "Azure refused to start the runbook (400: Azure did not accept the request, for example the runbook's parameters);"
        ),
        "{error}"
    );
}

#[tokio::test]
async fn a_server_error_is_retried() {
    let server = ArmServer::start().await;
    server.script("Hello-World", Script::completes("ok"));
    server.fail_next(2, 500);
    let exec = executor(client(&server));
    let req = request("Hello-World", &[]);

    let outcome = run(&exec, &req).await.0.unwrap();

    assert_eq!(outcome.state, FinalState::Completed);
    let statuses: Vec<StatusCode> = server.requests().iter().map(|r| r.status).collect();
    assert_eq!(
        &statuses[..3],
        &[
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::CREATED
        ]
    );
    assert_eq!(server.put_count(&name(&req)), 1);
}

#[tokio::test]
async fn throttling_waits_for_retry_after() {
    let server = ArmServer::start().await;
    server.script("Hello-World", Script::completes("ok"));
    server.fail_next(1, 429);
    let client = client(&server);

    let started = Instant::now();
    let created = client
        .create_job(&Uuid::new_v4().to_string(), "Hello-World", &[])
        .await
        .unwrap();

    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(created, CreateResult::Created(job) if job.status == JobStatus::New));
    let statuses: Vec<StatusCode> = server.requests().iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [StatusCode::TOO_MANY_REQUESTS, StatusCode::CREATED]
    );
}

#[tokio::test]
async fn persistent_server_errors_are_transient() {
    let server = ArmServer::start().await;
    server.script("Hello-World", Script::completes("ok"));
    server.fail_next(100, 500);
    let exec = executor(client(&server));

    let error = run(&exec, &request("Hello-World", &[]))
        .await
        .0
        .unwrap_err();

    assert!(
        error
            .0
            .starts_with("could not start the Azure Automation job: InternalServerError:"),
        "{error}"
    );
    assert_eq!(server.requests().len(), 5, "bounded retries");
    assert!(server.jobs().is_empty());
}

#[tokio::test]
async fn token_errors_are_transient_with_a_clear_message() {
    #[derive(Debug)]
    struct Broken;
    #[async_trait::async_trait]
    impl TokenCredential for Broken {
        async fn get_token(
            &self,
            _: &[&str],
            _: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                "identity endpoint unreachable",
            ))
        }
    }
    let server = ArmServer::start().await;
    server.script("Hello-World", Script::completes("ok"));
    let exec = executor(client_with(&server, Arc::new(Broken)));

    let error = run(&exec, &request("Hello-World", &[]))
        .await
        .0
        .unwrap_err();

    assert!(
        error
            .0
            .contains("could not get an Azure token: identity endpoint unreachable"),
        "{error}"
    );
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn a_wrong_token_is_refused_permanently() {
    let server = ArmServer::start().await;
    server.script("Hello-World", Script::completes("ok"));
    let exec = executor(client_with(&server, Arc::new(StaticToken("stale".into()))));

    let outcome = run(&exec, &request("Hello-World", &[])).await.0.unwrap();

    assert_eq!(outcome.state, FinalState::Failed);
    let error = outcome.error.unwrap();
    assert!(
        error.starts_with(
            "Azure refused to start the runbook (401: the runner could not sign in to Azure);"
        ),
        "{error}"
    );
}

#[tokio::test]
async fn a_failing_runbook_reports_its_error_stream() {
    let server = ArmServer::start().await;
    server.set_page_size(2);
    server.script(
        "Break-Things",
        Script {
            output: "step 1\n".into(),
            ..Script::fails(
                &["first error", "second error", "Cannot find VM 'web-01'."],
                Some("Cannot find VM 'web-01'."),
            )
        },
    );
    let exec = executor(client(&server));

    let (result, progress) = run(&exec, &request("Break-Things", &[])).await;

    let outcome = result.unwrap();
    assert_eq!(outcome.state, FinalState::Failed);
    assert_eq!(outcome.output, "step 1\n");
    // The exception first, then the Error records (all pages), without repeating the exception.
    assert_eq!(
        outcome.error.as_deref(),
        Some("Cannot find VM 'web-01'.\nfirst error\nsecond error")
    );
    assert_eq!(progress.len(), 1);
    let pages = server
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/streams"))
        .count();
    assert_eq!(pages, 2, "followed nextLink");
}

#[tokio::test]
async fn error_records_without_summary_are_read_whole() {
    let server = ArmServer::start().await;
    server.script(
        "Break-Things",
        Script {
            errors_without_summary: true,
            ..Script::fails(&["the whole error text"], None)
        },
    );
    let exec = executor(client(&server));

    let outcome = run(&exec, &request("Break-Things", &[])).await.0.unwrap();

    assert_eq!(outcome.state, FinalState::Failed);
    assert_eq!(outcome.error.as_deref(), Some("the whole error text"));
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.path.contains("/streams/"))
    );
}

#[tokio::test]
async fn a_job_running_too_long_is_stopped_and_timed_out() {
    let server = ArmServer::start().await;
    server.script("Forever", Script::never_ends());
    let exec = executor(client(&server));
    let mut req = request("Forever", &[]);
    req.timeout = Duration::from_millis(300);

    let started = Instant::now();
    let (result, progress) = run(&exec, &req).await;

    let outcome = result.unwrap();
    assert_eq!(outcome.state, FinalState::TimedOut);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(server.stop_count(&name(&req)), 1);
    assert_eq!(server.job(&name(&req)).unwrap().status, "Stopped");
    let error = outcome.error.unwrap();
    assert!(
        error.contains("ran longer than the 300ms limit and was stopped"),
        "{error}"
    );
    assert_eq!(progress.len(), 1);
}

#[tokio::test]
async fn a_job_that_ignores_the_stop_is_given_up_on() {
    let server = ArmServer::start().await;
    server.script(
        "Stubborn",
        Script {
            ignores_stop: true,
            ..Script::never_ends()
        },
    );
    let exec = executor(client(&server)).with_stop_wait(Duration::from_millis(200));
    let mut req = request("Stubborn", &[]);
    req.timeout = Duration::from_millis(100);

    let outcome = run(&exec, &req).await.0.unwrap();

    assert_eq!(outcome.state, FinalState::TimedOut);
    let error = outcome.error.unwrap();
    assert!(error.contains("still Running after 200ms"), "{error}");
    assert_eq!(server.stop_count(&name(&req)), 1);
}

#[tokio::test]
async fn a_suspended_job_is_reported_suspended() {
    let server = ArmServer::start().await;
    server.script(
        "Pause-Me",
        Script::suspends("The job was suspended: an input is needed."),
    );
    let exec = executor(client(&server));

    let outcome = run(&exec, &request("Pause-Me", &[])).await.0.unwrap();

    assert_eq!(outcome.state, FinalState::Suspended);
    assert_eq!(
        outcome.error.as_deref(),
        Some("The job was suspended: an input is needed.")
    );
}

#[tokio::test]
async fn a_users_stop_is_asked_again_until_azure_takes_it() {
    let server = ArmServer::start().await;
    server.script("Hello-World", Script::never_ends());
    let exec = executor(client(&server));
    let (stop, signal) = chatops_runner::executor::StopSignal::new();
    let req = JobRequest {
        stop: signal,
        ..request("Hello-World", &[])
    };
    let job = name(&req);
    // Azure refuses stops for longer than the client's own retries (5 tries).
    server.fail_next_stops(8);
    let running = {
        let server_job = job.clone();
        let server = &server;
        async move {
            while server.job(&server_job).is_none() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            stop.stop();
        }
    };
    let ((result, _), ()) = tokio::join!(run(&exec, &req), running);
    let outcome = result.unwrap();
    assert_eq!(outcome.state, FinalState::Stopped, "{outcome:?}");
    assert_eq!(server.stop_count(&job), 9, "asked until Azure took it");
}

#[tokio::test]
async fn a_job_stopped_by_someone_else_is_reported_stopped() {
    let server = ArmServer::start().await;
    server.script(
        "Hello-World",
        Script {
            end: End::Stopped,
            ..Script::completes("partial")
        },
    );
    let exec = executor(client(&server));

    let outcome = run(&exec, &request("Hello-World", &[])).await.0.unwrap();

    assert_eq!(outcome.state, FinalState::Stopped);
    assert_eq!(outcome.output, "partial");
    assert_eq!(
        outcome.error.as_deref(),
        Some("Azure Automation reports the job Stopped")
    );
}

#[tokio::test]
async fn the_server_plays_arm_and_the_identity_endpoint() {
    let server = ArmServer::start().await;
    let http = reqwest::Client::new();
    let job = server
        .url()
        .join(&format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Automation/automationAccounts/{}/jobs/x",
            chatops_e2e::arm::SUBSCRIPTION,
            chatops_e2e::arm::RESOURCE_GROUP,
            chatops_e2e::arm::ACCOUNT
        ))
        .unwrap();

    let anonymous = http.get(job.clone()).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let versionless = http
        .get(job.clone())
        .bearer_auth(server.token())
        .send()
        .await
        .unwrap();
    assert_eq!(versionless.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = versionless.json().await.unwrap();
    assert_eq!(body["error"]["code"], "MissingApiVersionParameter");

    let token_url = format!(
        "{}?api-version=2019-08-01&resource=https://management.azure.com",
        server.msi_endpoint()
    );
    let refused = http.get(&token_url).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let token: serde_json::Value = http
        .get(&token_url)
        .header("X-IDENTITY-HEADER", server.identity_header())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(token["access_token"], server.token());
    assert_eq!(token["token_type"], "Bearer");
    assert!(token["expires_on"].as_str().unwrap().parse::<i64>().is_ok());
    assert_eq!(server.token_requests(), 1);
}

/// Waits (at most 10 s) until the job exists at the server.
async fn until_created(server: &ArmServer, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.job(name).is_none() {
        assert!(Instant::now() < deadline, "the job was never created");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn an_arm_outage_while_following_is_waited_out_and_the_timeout_still_enforced() {
    let server = ArmServer::start().await;
    server.script("Forever", Script::never_ends());
    let exec = executor(client(&server));
    let mut req = request("Forever", &[]);
    req.timeout = Duration::from_millis(500);
    let job = name(&req);
    let running = tokio::spawn(async move { run(&exec, &req).await });
    until_created(&server, &job).await;
    // Eight reads in a row fail in full (5 tries each), past the job's timeout.
    server.fail_next(40, 500);

    let (result, progress) = running.await.unwrap();

    let outcome = result.expect("the outage did not end the run");
    assert_eq!(outcome.state, FinalState::TimedOut);
    assert_eq!(server.stop_count(&job), 1);
    assert_eq!(server.job(&job).unwrap().status, "Stopped");
    assert_eq!(progress.len(), 1);
    let failed = server
        .requests()
        .iter()
        .filter(|r| r.status == StatusCode::INTERNAL_SERVER_ERROR)
        .count();
    assert_eq!(failed, 40, "the whole outage was met");
}

#[tokio::test]
async fn an_outage_longer_than_the_patience_ends_the_run_instead_of_waiting_forever() {
    let server = ArmServer::start().await;
    server.script("Forever", Script::never_ends());
    let exec = executor(client(&server)).with_outage_patience(Duration::from_millis(300));
    let req = request("Forever", &[]);
    let job = name(&req);
    let running = tokio::spawn(async move { run(&exec, &req).await });
    until_created(&server, &job).await;
    // ARM fails every read from now on, as with a revoked credential.
    server.fail_next(100_000, 503);

    let (result, _) = tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("the run ends instead of waiting forever")
        .unwrap();
    // It ends, telling the requester what is known, instead of holding the job forever.
    let outcome = result.expect("an outcome");
    assert_eq!(outcome.state, FinalState::Failed);
    assert!(
        outcome.error.unwrap_or_default().contains("503"),
        "the reason is given"
    );
}

#[tokio::test]
async fn follow_started_follows_an_existing_job_and_never_starts_one() {
    let server = ArmServer::start().await;
    server.script("Hello-World", Script::completes("from the first runner"));
    let exec = executor(client(&server));
    let started = request("Hello-World", &[]);
    server.seed_job(&name(&started), "Hello-World");
    let never = request("Hello-World", &[]);

    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let followed = exec.follow_started(&started, tx.clone()).await.unwrap();
    let missing = exec.follow_started(&never, tx).await.unwrap();

    let outcome = followed.expect("the existing job is followed");
    assert_eq!(outcome.state, FinalState::Completed);
    assert_eq!(outcome.output, "from the first runner");
    assert_eq!(missing, None);
    assert_eq!(server.put_count(&name(&started)), 0);
    assert_eq!(server.put_count(&name(&never)), 0);
    assert_eq!(server.jobs().len(), 1, "nothing started");
}

#[tokio::test]
async fn a_huge_output_completes_in_one_delivery_with_its_end_shown() {
    const BYTES: u64 = 200 * 1024 * 1024;
    let server = ArmServer::start().await;
    server.script("Chatty", Script::completes_with_generated_output(BYTES));
    let exec = executor(client(&server));
    let req = request("Chatty", &[]);

    let (result, _) = run(&exec, &req).await;

    // One delivery: the run ends with an outcome, not a transient error that redelivers it.
    let outcome = result.unwrap();
    assert_eq!(outcome.state, FinalState::Completed);
    assert!(
        outcome.output.len() <= 64 * 1024,
        "only the end is kept, not {} bytes",
        outcome.output.len()
    );
    let line_len = chatops_e2e::arm::generated_line(0, 0).len() as u64;
    let lines = BYTES / line_len;
    let last = chatops_e2e::arm::generated_line(lines, lines);
    assert!(
        outcome.output.ends_with(&last),
        "{}",
        &outcome.output[outcome.output.len() - 100..]
    );
    let output_reads = server
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/output"))
        .count();
    assert_eq!(output_reads, 1);

    let message = chatops_runner::notify::render::text(
        &job_message(&req),
        &chatops_runner::notify::Update::Finished(outcome),
    );
    assert!(message.contains(last.trim_end()), "{message}");
}

/// The job message of a request, as the runner would have taken it off the queue.
fn job_message(req: &JobRequest) -> chatops_shared::job::JobMessage {
    chatops_shared::job::JobMessage {
        schema: chatops_shared::job::SCHEMA_VERSION,
        job_id: req.job_id,
        kind: chatops_shared::job::JobKind::Run,
        runbook: req.target.clone(),
        params: req.params.iter().cloned().collect(),
        user_id: "U0123".into(),
        user_name: "ana".into(),
        team_id: "T000".into(),
        channel_id: "C0456".into(),
        channel_name: Some("ops".into()),
        response_url: None,
        requested_at: time::OffsetDateTime::now_utc(),
        enterprise_id: None,
        traceparent: None,
        started_at: None,
        record_day: None,
        target: None,
        rerun_of: None,
        catalog_version: None,
        secret_params: Vec::new(),
    }
}

/// The whole path: a command, the queue, the worker, Slack.
#[tokio::test]
async fn a_huge_output_through_the_queue_is_reported_completed_once() {
    const BYTES: u64 = 200 * 1024 * 1024;
    let app = TestApp::spawn().await;
    app.arm.script(
        "Restart-WebApp",
        Script::completes_with_generated_output(BYTES),
    );
    let id = TestApp::short_id(&app.command(ALICE, OPS, "restart-web prod").await);

    assert_eq!(app.drain(&app.worker()).await, 1, "one delivery");

    let text = app.final_text(&id, "*Completed*").await;
    let line_len = chatops_e2e::arm::generated_line(0, 0).len() as u64;
    let lines = BYTES / line_len;
    let last = chatops_e2e::arm::generated_line(lines, lines);
    assert!(
        text.contains(&format!("{}\n```", last.trim_end())),
        "{text}"
    );
    assert!(app.peek_jobs().await.is_empty(), "the message was deleted");
    assert_eq!(app.slack_count(&id, "*Completed*"), 1);
    app.finish().await;
}
