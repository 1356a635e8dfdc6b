//! The service binaries as processes: configuration from the environment, the managed-identity
//! credential, exit codes, SIGTERM, and logs that never carry a secret.

// Test code: a failed step should stop the test with its message.
#![allow(clippy::expect_used)]

use chatops_e2e::app::{ALICE, OPS, SIGNING_SECRET, TestApp};
use chatops_e2e::process::Service;
use chatops_shared::queue::connection::DEVSTORE_KEY;
use std::time::Duration;

/// A service's environment.
type Env = Vec<(String, String)>;

fn with(env: &[(String, String)], extra: &[(&str, &str)]) -> Env {
    let mut env: Env = env
        .iter()
        .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
        .cloned()
        .collect();
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    env
}

/// Posts a signed slash command to an ingress process; returns its JSON answer.
async fn post_command(app: &TestApp, addr: &str, body: String) -> serde_json::Value {
    app.command_to(addr, body).await
}

#[tokio::test]
async fn runner_binary_gets_its_arm_token_from_the_managed_identity_endpoint() {
    let app = TestApp::spawn().await;
    let mut env = app.service_env();
    env.extend(app.arm.env());
    env.push(("CHATOPS_AUTOMATION_POLL_INTERVAL".into(), "100ms".into()));
    let mut runner = Service::start("chatops-runner", &env);
    runner
        .wait_for_line(
            |l| l.contains("chatops-runner started"),
            Duration::from_secs(30),
        )
        .await;

    let answer = app.command(ALICE, OPS, "restart-web prod").await;
    let id = TestApp::short_id(&answer);
    let text = app.final_text(&id, "*Completed*").await;
    assert!(text.contains("Restart-WebApp"), "{text}");
    assert!(
        app.arm.token_requests() >= 1,
        "the token came from the identity endpoint"
    );

    assert_eq!(runner.terminate(Duration::from_secs(15)).await, Some(0));
    let logs = runner.output().join("\n");
    assert!(!logs.contains(app.arm.token()), "bearer token in the logs");
    assert!(
        !logs.contains(app.arm.identity_header()),
        "identity header in the logs"
    );
    app.finish().await;
}

#[tokio::test]
async fn the_whole_stack_as_processes_runs_a_command_and_keeps_secrets_out_of_the_logs() {
    let app = TestApp::spawn().await;
    let env = app.service_env();
    let mut ingress = Service::start("chatops-ingress", &env);
    let mut runner = Service::start("chatops-runner", &env);
    let addr = ingress.bound_addr().await;
    let runner_addr = runner.bound_addr().await;
    for url in [
        format!("http://{addr}/healthz"),
        format!("http://{addr}/readyz"),
        format!("http://{runner_addr}/healthz"),
        format!("http://{runner_addr}/readyz"),
    ] {
        let status = app
            .client
            .get(&url)
            .send()
            .await
            .expect("health answers")
            .status();
        assert_eq!(status.as_u16(), 200, "{url}");
    }

    // A signed command to the ingress process, as Slack sends it.
    let body = app.form(ALICE, OPS, "echo 'from the binaries'");
    let ts = time::OffsetDateTime::now_utc().unix_timestamp();
    let response = app
        .client
        .post(format!("http://{addr}/slack/commands"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", ts.to_string())
        .header(
            "x-slack-signature",
            chatops_ingress::slack::verify::sign(SIGNING_SECRET, ts, body.as_bytes()),
        )
        .body(body.clone())
        .send()
        .await
        .expect("ingress answers");
    let answer: serde_json::Value = response.json().await.expect("JSON answer");
    assert_eq!(answer["response_type"], "in_channel", "{answer}");
    let text = answer["text"].as_str().unwrap_or_default();
    let id = text
        .rsplit("job `")
        .next()
        .and_then(|s| s.split('`').next())
        .unwrap_or_default()
        .to_owned();
    let done = app.final_text(&id, "*Completed*").await;
    assert!(done.contains("args: from the binaries two"), "{done}");

    assert_eq!(ingress.terminate(Duration::from_secs(15)).await, Some(0));
    assert_eq!(runner.terminate(Duration::from_secs(15)).await, Some(0));
    let logs = [ingress.output(), runner.output()].concat().join("\n");
    let response_url = url::form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == "response_url")
        .map(|(_, v)| v.into_owned())
        .expect("response_url in the form");
    let job_key = app.job_keys.current().to_base64();
    for (what, secret) in [
        ("signing secret", SIGNING_SECRET),
        ("job signing key", job_key.as_str()),
        ("account key", DEVSTORE_KEY),
        ("response_url", response_url.as_str()),
        ("SAS signature", "sig="),
    ] {
        assert!(
            !logs.contains(secret),
            "{what} appears in the logs:\n{logs}"
        );
    }
    app.finish().await;
}

#[tokio::test]
async fn services_refuse_to_start_on_bad_configuration_and_say_why() {
    let app = TestApp::spawn().await;
    let env = app.service_env();
    let bad_catalog = app.dir.join("bad.toml");
    std::fs::write(
        &bad_catalog,
        "[runbooks.Bad-Name]\nexecutor = \"local\"\ntarget = \"echo.sh\"\n",
    )
    .expect("write");
    let bad_catalog = bad_catalog.display().to_string();

    let without = |var: &str| -> Env { env.iter().filter(|(k, _)| k != var).cloned().collect() };
    // 16 bytes: half of what a key needs.
    let short_key = "MDEyMzQ1Njc4OWFiY2RlZg==";
    let mut cases: Vec<(&str, Env, &str)> = vec![
        (
            "chatops-ingress",
            without("SLACK_SIGNING_SECRET"),
            "SLACK_SIGNING_SECRET: is required",
        ),
        (
            "chatops-ingress",
            with(&env, &[("CHATOPS_CATALOG", &bad_catalog)]),
            "bad.toml:1:",
        ),
        (
            "chatops-runner",
            with(&env, &[("CHATOPS_CATALOG", &bad_catalog)]),
            "bad.toml:1:",
        ),
        (
            "chatops-runner",
            with(&env, &[("CHATOPS_VISIBILITY_TIMEOUT", "soon")]),
            "CHATOPS_VISIBILITY_TIMEOUT",
        ),
        (
            "chatops-runner",
            with(&env, &[("CHATOPS_QUEUE_NAME", "Not_A_Queue")]),
            "CHATOPS_QUEUE_NAME",
        ),
        (
            "chatops-runner",
            with(
                &env,
                &[(
                    "AZURE_STORAGE_QUEUE_ENDPOINT",
                    "https://acct.queue.core.windows.net",
                )],
            ),
            "AZURE_STORAGE_QUEUE_ENDPOINT",
        ),
        (
            "chatops-runner",
            with(&env, &[("AZURE_SUBSCRIPTION_ID", "sub")]),
            "AUTOMATION_RESOURCE_GROUP",
        ),
    ];
    for name in ["chatops-ingress", "chatops-runner"] {
        cases.extend([
            (
                name,
                without("CHATOPS_JOB_SIGNING_KEY"),
                "CHATOPS_JOB_SIGNING_KEY: is required",
            ),
            (
                name,
                with(&env, &[("CHATOPS_JOB_SIGNING_KEY", "not base64!")]),
                "CHATOPS_JOB_SIGNING_KEY: is not base64",
            ),
            (
                name,
                with(&env, &[("CHATOPS_JOB_SIGNING_KEY", short_key)]),
                "CHATOPS_JOB_SIGNING_KEY: decodes to 16 bytes",
            ),
            // Tokio itself would panic (exit 101) on these.
            (
                name,
                with(&env, &[("TOKIO_WORKER_THREADS", "0")]),
                "TOKIO_WORKER_THREADS: `0` is not a whole number of at least 1",
            ),
            (
                name,
                with(&env, &[("TOKIO_WORKER_THREADS", "many")]),
                "TOKIO_WORKER_THREADS: `many` is not",
            ),
        ]);
    }
    cases.push((
        "chatops-runner",
        with(&env, &[("CHATOPS_JOB_SIGNING_KEY_PREVIOUS", short_key)]),
        "CHATOPS_JOB_SIGNING_KEY_PREVIOUS: decodes to 16 bytes",
    ));
    for (name, env, expected) in cases {
        let mut service = Service::start(name, &env);
        let code = service.exit_code(Duration::from_secs(30)).await;
        let output = service.output().join("\n");
        assert_eq!(code, Some(2), "{name} with {expected}: {output}");
        assert!(
            output.contains(expected),
            "{name}: expected {expected:?} in:\n{output}"
        );
        assert!(
            !output.contains(short_key),
            "a key is never quoted: {output}"
        );
    }
    // An address in use: the error names the variable and the address.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_addr = taken.local_addr().expect("addr").to_string();
    for (name, var) in [
        ("chatops-ingress", "CHATOPS_INGRESS_ADDR"),
        ("chatops-ingress", "CHATOPS_METRICS_ADDR"),
        ("chatops-runner", "CHATOPS_RUNNER_ADDR"),
    ] {
        let mut service = Service::start(name, &with(&env, &[(var, &taken_addr)]));
        let code = service.exit_code(Duration::from_secs(30)).await;
        let output = service.output().join("\n");
        assert!(code.is_some_and(|c| c != 0), "{name} with {var}: {output}");
        assert!(
            output.contains(&format!("cannot listen on {taken_addr} ({var})")),
            "{name}: {output}"
        );
    }
    drop(taken);
    app.finish().await;
}

#[tokio::test]
async fn keygen_prints_a_fresh_key_that_both_services_accept() {
    use base64::Engine as _;
    let mut keys = Vec::new();
    for name in ["chatops-ingress", "chatops-runner", "chatops-runner"] {
        let out = std::process::Command::new(chatops_e2e::process::binary(name))
            .arg("keygen")
            .env_clear()
            .output()
            .expect("keygen runs");
        assert!(out.status.success(), "{name} keygen: {out:?}");
        let key = String::from_utf8(out.stdout).expect("utf-8");
        let key = key.trim().to_owned();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&key)
            .expect("standard base64");
        assert_eq!(bytes.len(), 32, "{name}: {key}");
        assert!(chatops_shared::job::JobKey::from_base64(&key).is_ok());
        keys.push(key);
    }
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 3, "every key is fresh");
}

#[tokio::test]
async fn secrets_stay_out_of_the_logs_when_everything_fails() {
    use chatops_e2e::slack::PathKind;
    let mut app = TestApp::spawn().await;
    let sas = app.azurite.sas_connection_string();
    let sig = sas
        .split(['&', ';', '?'])
        .find_map(|p| p.strip_prefix("sig="))
        .expect("SAS has a signature")
        .to_owned();
    let webhook = app.slack.webhook_url();
    let mut env = with(
        &app.service_env(),
        &[
            ("AZURE_STORAGE_CONNECTION_STRING", &sas),
            ("SLACK_WEBHOOK_URL", &webhook),
        ],
    );
    env.extend(app.arm.env());
    env.push(("CHATOPS_AUTOMATION_POLL_INTERVAL".into(), "100ms".into()));
    let mut ingress = Service::start("chatops-ingress", &env);
    let mut runner = Service::start("chatops-runner", &env);
    let addr = ingress.bound_addr().await;
    runner
        .wait_for_line(
            |l| l.contains("chatops-runner started"),
            Duration::from_secs(30),
        )
        .await;

    // Azure Automation fails every call; Slack refuses the response_url and the webhook fails.
    app.arm.fail_next(100_000, 500);
    app.slack
        .fail_next(PathKind::ResponseUrl, 1000, 404, "expired_url");
    app.slack
        .fail_next(PathKind::Webhook, 1000, 500, "rollup_error");
    post_command(&app, &addr, app.form(ALICE, OPS, "restart-web prod")).await;
    post_command(&app, &addr, app.form(ALICE, OPS, "echo hi")).await;
    runner
        .wait_for_line(
            |l| l.contains("job hit a transient error"),
            Duration::from_secs(30),
        )
        .await;
    runner
        .wait_for_line(
            |l| l.contains("final notification failed"),
            Duration::from_secs(30),
        )
        .await;
    // And the queue goes away under both services.
    app.azurite.stop().await;
    let answer = post_command(&app, &addr, app.form(ALICE, OPS, "echo again")).await;
    assert!(
        answer["text"]
            .as_str()
            .unwrap_or_default()
            .contains("Could not queue"),
        "{answer}"
    );
    ingress
        .wait_for_line(
            |l| l.contains("could not queue job"),
            Duration::from_secs(10),
        )
        .await;
    runner
        .wait_for_line(
            |l| l.contains("cannot read the queue"),
            Duration::from_secs(60),
        )
        .await;

    assert_eq!(ingress.terminate(Duration::from_secs(15)).await, Some(0));
    assert_eq!(runner.terminate(Duration::from_secs(30)).await, Some(0));
    let logs = [ingress.output(), runner.output()].concat().join("\n");
    for (what, secret) in [
        ("SAS signature", sig.as_str()),
        ("account key", DEVSTORE_KEY),
        ("signing secret", SIGNING_SECRET),
        ("webhook URL", webhook.as_str()),
        ("response_url path", "/commands/T000/"),
        ("ARM token", app.arm.token()),
        ("identity header", app.arm.identity_header()),
    ] {
        assert!(
            !logs.contains(secret),
            "{what} appears in the logs:\n{logs}"
        );
    }
    app.forget_queue();
}

#[tokio::test]
async fn without_slack_the_runner_prints_the_status_messages_to_its_log() {
    let app = TestApp::spawn().await;
    // The default prefix (https://hooks.slack.com/) does not cover the test server's
    // response_urls, and there is no webhook: nothing can reach Slack.
    let env: Env = app
        .service_env()
        .into_iter()
        .filter(|(k, _)| k != "CHATOPS_SLACK_RESPONSE_URL_PREFIX")
        .collect();
    let mut runner = Service::start("chatops-runner", &env);
    runner.bound_addr().await;
    let id = TestApp::short_id(&app.command(ALICE, OPS, "echo logged").await);
    let line = runner
        .wait_for_line(
            |l| l.contains(&id) && l.contains("*Completed*"),
            Duration::from_secs(20),
        )
        .await;
    assert!(line.contains("args: logged two"), "{line}");
    assert!(app.slack.messages().is_empty(), "nothing was posted");
    assert_eq!(runner.terminate(Duration::from_secs(15)).await, Some(0));
    app.finish().await;
}

/// The peak resident memory of process `pid` (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kb * 1024
}

#[tokio::test]
async fn a_script_that_floods_its_output_does_not_fill_the_runners_memory() {
    let app = TestApp::spawn().await;
    // 200 MB of lines, written as fast as a pipe takes them, then done.
    app.add_script_runbook(
        "flood",
        "Floods its output",
        "#!/bin/sh\nyes 'a line of output' | head -c 200000000\necho done\n",
    );

    let mut runner = Service::start("chatops-runner", &app.service_env());
    runner.bound_addr().await;
    let pid = runner.pid().expect("runner runs");
    let idle = peak_rss(pid);
    let id = TestApp::short_id(&app.command(ALICE, OPS, "flood").await);
    let text = app.final_text(&id, "*Completed*").await;
    assert!(text.contains("done"), "{text}");
    let peak = peak_rss(pid);
    // Before output was batched within bounds, the whole 200 MB waited in memory for the
    // next batch.
    assert!(
        peak < idle + 64 * 1024 * 1024,
        "peak RSS {peak} bytes, {idle} before the job"
    );
    assert_eq!(runner.terminate(Duration::from_secs(15)).await, Some(0));
    app.finish().await;
}

/// The `chatops-homes-*` directories in `tmp`, and the job homes in each.
fn homes_in(tmp: &std::path::Path) -> Vec<(std::path::PathBuf, usize)> {
    let mut found: Vec<_> = std::fs::read_dir(tmp)
        .expect("read TMPDIR")
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("chatops-homes-")
        })
        .map(|e| {
            let homes = std::fs::read_dir(e.path())
                .map(|d| {
                    d.flatten()
                        .filter(|h| h.file_name().to_string_lossy().starts_with("chatops-home-"))
                        .count()
                })
                .unwrap_or(0);
            (e.path(), homes)
        })
        .collect();
    found.sort();
    found
}

#[tokio::test]
async fn the_next_runner_removes_the_script_homes_a_killed_runner_left() {
    let app = TestApp::spawn().await;
    let tmp = app.dir.join("tmp");
    std::fs::create_dir(&tmp).expect("TMPDIR");
    let env = with(
        &app.service_env(),
        &[("TMPDIR", tmp.to_str().expect("UTF-8 path"))],
    );
    let mut killed = Service::start("chatops-runner", &env);
    killed.bound_addr().await;
    app.command(ALICE, OPS, "record n=1 pause=30").await;
    app.wait_for_script_start().await;
    let left = homes_in(&tmp);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].1, 1, "the job's home is in its runner's directory");
    killed.kill().await;
    assert_eq!(homes_in(&tmp), left, "SIGKILL leaves them");

    let mut next = Service::start("chatops-runner", &env);
    next.bound_addr().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while homes_in(&tmp).iter().any(|(dir, _)| *dir == left[0].0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the killed runner's homes are still there: {:?}",
            homes_in(&tmp)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(homes_in(&tmp).len(), 1, "the next runner's own");
    assert_eq!(next.terminate(Duration::from_secs(15)).await, Some(0));
    assert_eq!(homes_in(&tmp), [], "a runner that stops removes its own");
    // The killed runner's message stays invisible for its visibility timeout (60 s at
    // least); taking over such a job is tested in `records.rs`.
    app.forget_queue();
}
