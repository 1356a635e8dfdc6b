//! Secret parameters (`secret = true`) through the whole stack as processes: the value reaches
//! the script in its environment only, and appears in no answer, Slack message, job record,
//! audit line, log line, `status` or `history` answer, nor in the script's argv.

// Test code: a failed step should stop the test with its message.
#![allow(clippy::expect_used)]

use chatops_e2e::app::{ALICE, OPS, Options, TestApp};
use chatops_e2e::process::Service;
use chatops_e2e::slack::PathKind;
use chatops_shared::audit::DEFAULT_AUDIT_CONTAINER;
use chatops_shared::records::DEFAULT_RECORDS_CONTAINER;
use std::time::Duration;

const SECRET: &str = "s3cr3t-Tok3n-7f9a";
/// The part of the too-long value that would show if it were quoted.
const LONG_SECRET: &str = "L0ng-s3cr3t-far-too-long-for-its-max-len-of-40";

const RUNBOOK: &str = r#"
[runbooks.login]
description = "Takes a token"
executor = "local"
target = "login.sh"
params = [
  { name = "user", required = true },
  { name = "token", required = true, secret = true, max_len = 40 },
]
allow = { users = ["UALICE"] }
"#;

/// Prints its arguments, each in brackets, and the token (which the runner masks in what it
/// shows), and writes the token it got from its environment beside itself.
const SCRIPT: &str = "#!/bin/sh\nprintf 'argv:'\nfor a in \"$@\"; do printf ' [%s]' \"$a\"; done\necho\necho \"token: $CHATOPS_PARAM_TOKEN\"\nprintf '%s' \"$CHATOPS_PARAM_TOKEN\" > \"$0.token\"\n";

/// Posts a signed slash command to an ingress process; returns its JSON answer.
async fn post(app: &TestApp, addr: &str, text: &str) -> serde_json::Value {
    let body = app.form(ALICE, OPS, text);
    app.command_to(addr, body).await
}

/// Every blob of a container, as text.
async fn container_text(app: &TestApp, container: &str) -> String {
    let store = app.blob_store(container);
    let mut text = String::new();
    let mut marker = None;
    loop {
        let page = store.list("", marker.as_deref()).await.expect("list");
        for listed in &page.blobs {
            if let Some(blob) = store.read(&listed.name).await.expect("read") {
                text.push_str(&String::from_utf8_lossy(&blob.body));
                text.push('\n');
            }
        }
        match page.next_marker {
            Some(next) => marker = Some(next),
            None => return text,
        }
    }
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in [SECRET, LONG_SECRET] {
        assert!(!text.contains(secret), "the secret is in {what}: {text}");
    }
}

#[tokio::test]
async fn a_secret_value_reaches_the_script_in_its_environment_only_and_is_shown_nowhere() {
    let app = TestApp::spawn().await;
    let catalog = app.dir.join("runbooks.toml");
    let text = std::fs::read_to_string(&catalog).expect("read catalog");
    std::fs::write(&catalog, format!("{text}{RUNBOOK}")).expect("write catalog");
    let script = app.dir.join("login.sh");
    std::fs::write(&script, SCRIPT).expect("write script");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");

    let env = app.service_env();
    let mut ingress = Service::start("chatops-ingress", &env);
    let mut runner = Service::start("chatops-runner", &env);
    let addr = ingress.bound_addr().await;
    runner.bound_addr().await;

    let mut answers = Vec::new();
    let answer = post(&app, &addr, &format!("login alice {SECRET}")).await;
    // Slack shows the command as typed above an in-channel answer: the requester alone gets it.
    assert_eq!(answer["response_type"], "ephemeral", "{answer}");
    let ack = answer["text"].as_str().unwrap_or_default().to_owned();
    assert!(ack.contains("token=•••"), "{ack}");
    let id = ack
        .rsplit("job `")
        .next()
        .and_then(|s| s.split('`').next())
        .unwrap_or_default()
        .to_owned();
    answers.push(answer);

    let done = app.final_text(&id, "*Completed*").await;
    // Two places, the secret's left empty.
    assert!(done.contains("argv: [alice] []\n"), "{done}");
    // The script printed it: what the runner shows has it masked.
    assert!(done.contains("token: •••"), "{done}");
    assert_eq!(
        std::fs::read_to_string(app.dir.join("login.sh.token")).expect("the script wrote it"),
        SECRET,
        "the script gets the value in CHATOPS_PARAM_TOKEN"
    );

    // A value that breaks its rule is refused without being quoted.
    let refused = post(&app, &addr, &format!("login alice token={LONG_SECRET}")).await;
    assert_eq!(refused["response_type"], "ephemeral", "{refused}");
    assert!(
        refused["text"]
            .as_str()
            .unwrap_or_default()
            .contains("`•••` is not a valid value for `token`"),
        "{refused}"
    );
    answers.push(refused);
    for words in [
        format!("status {id}"),
        "status".to_owned(),
        "history".to_owned(),
    ] {
        let answer = post(&app, &addr, &words).await;
        assert!(answer.to_string().contains("login"), "{words}: {answer}");
        answers.push(answer);
    }
    let rerun = post(&app, &addr, &format!("rerun {id}")).await;
    assert!(
        rerun["text"]
            .as_str()
            .unwrap_or_default()
            .contains("its secret parameters (token) are not kept"),
        "{rerun}"
    );
    answers.push(rerun);
    // Refused, and audited with the values masked: the values typed again after a rerun's job
    // id, values after `--form` (no forms without a bot token), a secret given to a runbook
    // that has none.
    // A secret typed where a job id goes: the caller's own answer quotes what they typed; the
    // audit log and the logs do not.
    for words in [format!("rerun {SECRET}"), format!("stop {SECRET}")] {
        let answer = post(&app, &addr, &words).await;
        assert_eq!(answer["response_type"], "ephemeral", "{words}: {answer}");
        assert!(answer.to_string().contains("is not a job id"), "{answer}");
    }
    for words in [
        format!("rerun {id} token={SECRET}"),
        format!("rerun token={SECRET}"),
        format!("login --form alice {SECRET}"),
        format!("echo token={SECRET}"),
    ] {
        let answer = post(&app, &addr, &words).await;
        assert_eq!(answer["response_type"], "ephemeral", "{words}: {answer}");
        answers.push(answer);
    }
    assert_eq!(ingress.terminate(Duration::from_secs(15)).await, Some(0));
    assert_eq!(runner.terminate(Duration::from_secs(15)).await, Some(0));
    for answer in &answers {
        assert_no_secret("an ingress answer", &answer.to_string());
    }
    let slack: Vec<String> = app.slack.messages().iter().map(|m| m.raw.clone()).collect();
    assert!(!slack.is_empty());
    let statuses = app.slack.messages_to(PathKind::ResponseUrl);
    assert!(!statuses.is_empty());
    for posted in &statuses {
        assert!(
            posted.raw.contains(r#""response_type":"ephemeral""#),
            "a status of a job with a typed secret is for its requester only: {}",
            posted.raw
        );
    }
    assert_no_secret("a Slack message", &slack.join("\n"));
    let records = container_text(&app, DEFAULT_RECORDS_CONTAINER).await;
    assert!(records.contains("\"token\":\"•••\""), "{records}");
    assert_no_secret("a job record", &records);
    let audit = container_text(&app, DEFAULT_AUDIT_CONTAINER).await;
    assert!(
        audit.contains("\"event\":\"accepted\"") && audit.contains("\"event\":\"rejected\""),
        "{audit}"
    );
    assert_no_secret("the audit log", &audit);
    let logs = [ingress.output(), runner.output()].concat().join("\n");
    assert!(logs.contains(&id[..8]), "the job is logged: {logs}");
    assert_no_secret("the logs", &logs);
    app.finish().await;
}

#[tokio::test]
async fn a_job_run_without_its_optional_secret_can_be_rerun() {
    let app = TestApp::spawn_opts(Options {
        extra_runbooks: r#"
[runbooks.fetch]
description = "Fetches, with a token when given"
executor = "local"
target = "echo.sh"
params = [ { name = "url", required = true }, { name = "token", secret = true } ]
allow = { users = ["UALICE"] }
"#,
        ..Options::default()
    })
    .await;
    let plain = TestApp::short_id(
        &app.command(ALICE, OPS, "fetch url=https://example.org")
            .await,
    );
    let with = TestApp::short_id(
        &app.command(ALICE, OPS, "fetch url=https://example.org token=abcd1234")
            .await,
    );
    app.drain(&app.worker()).await;
    app.final_text(&plain, "*Completed*").await;

    let answer = app
        .command(ALICE, OPS, &format!("rerun {plain}"))
        .await
        .text();
    assert!(answer.contains("queued *fetch*"), "{answer}");
    let jobs = app.take_jobs().await;
    assert_eq!(jobs.len(), 1, "{answer}");
    assert_eq!(
        jobs[0].params.get("url").map(String::as_str),
        Some("https://example.org")
    );
    assert!(!jobs[0].params.contains_key("token"));

    let answer = app
        .command(ALICE, OPS, &format!("rerun {with}"))
        .await
        .text();
    assert!(
        answer.contains("its secret parameters (token) are not kept"),
        "{answer}"
    );
    assert!(app.peek_jobs().await.is_empty());
    app.finish().await;
}

#[tokio::test]
async fn a_secrets_catalog_default_is_masked_in_what_the_job_shows_and_keeps() {
    const DEFAULT: &str = "d3fault-k3y-9b1c";
    let app = TestApp::spawn_opts(Options {
        extra_runbooks: r#"
[runbooks.sync]
description = "Syncs with the catalog's key unless given another"
executor = "local"
target = "echo.sh"
params = [ { name = "key", secret = true, default = "d3fault-k3y-9b1c" } ]
allow = { users = ["UALICE"] }
"#,
        ..Options::default()
    })
    .await;
    let id = TestApp::short_id(&app.command(ALICE, OPS, "sync").await);
    app.drain(&app.worker()).await;
    // The script got it (echo.sh prints its environment), and it shows masked.
    let text = app.final_text(&id, "*Completed*").await;
    assert!(text.contains("CHATOPS_PARAM_KEY=•••"), "{text}");
    assert!(!text.contains(DEFAULT), "{text}");
    let records = container_text(&app, DEFAULT_RECORDS_CONTAINER).await;
    assert!(records.contains("CHATOPS_PARAM_KEY=•••"), "{records}");
    assert!(
        !records.contains(DEFAULT),
        "the default is in the records: {records}"
    );
    app.finish().await;
}
