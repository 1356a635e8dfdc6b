//! The audit log against real Azurite: lines written through `AuditLog` (append blobs at known
//! positions), then `chatops-runner audit verify` and `audit export`, the real binary with the
//! services' environment.

// Test code: a failed step should stop the test with its message.
#![allow(clippy::expect_used)]

use chatops_e2e::app::TestApp;
use chatops_e2e::process::binary;
use chatops_shared::audit::naming::blob_day;
use chatops_shared::audit::verify::list_blobs;
use chatops_shared::audit::{AUDIT_CONTAINER_VAR, AuditEvent, AuditLog};
use chatops_shared::blob::BlobStore;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// What a finished `chatops-runner audit …` gave.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// `chatops-runner audit export --since <since> --until <until>`.
async fn export(env: &[(String, String)], since: time::Date, until: time::Date) -> Run {
    let (since, until) = (since.to_string(), until.to_string());
    audit(env, &["export", "--since", &since, "--until", &until]).await
}

async fn audit(env: &[(String, String)], args: &[&str]) -> Run {
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(binary("chatops-runner"))
            .arg("audit")
            .args(args)
            .env_clear()
            .envs(env.iter().cloned())
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .output(),
    )
    .await
    .expect("audit command finishes")
    .expect("run chatops-runner");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn events() -> Vec<AuditEvent> {
    let job = Uuid::new_v4();
    vec![
        AuditEvent::Accepted {
            job_id: job,
            runbook: "restart-web".to_owned(),
            params: BTreeMap::from([("env".to_owned(), "staging".to_owned())]),
            user_id: "U0ALICE".to_owned(),
            channel_id: "C0OPS".to_owned(),
            rerun_of: None,
        },
        AuditEvent::Denied {
            user_id: "U0MALLORY".to_owned(),
            channel_id: "C0OPS".to_owned(),
            runbook: "restart-web".to_owned(),
            rule: "allow".to_owned(),
        },
        AuditEvent::Started {
            job_id: job,
            runner: "runner-1".to_owned(),
        },
        AuditEvent::StopRequested {
            job_id: job,
            by: "U0ALICE".to_owned(),
            stop_job_id: Uuid::new_v4(),
        },
        AuditEvent::Stopped {
            job_id: job,
            by: "U0ALICE".to_owned(),
        },
        AuditEvent::Ended {
            job_id: job,
            state: "stopped".to_owned(),
            runner: "runner-1".to_owned(),
        },
    ]
}

/// A fresh audit container on the app's Azurite with one writer's lines in it; returns the
/// store, the environment naming the container, and the blob's name.
async fn written_log(app: &TestApp) -> (Arc<dyn BlobStore>, Vec<(String, String)>, String) {
    let container = format!("audit-{}", &Uuid::new_v4().simple().to_string()[..12]);
    let store = app.blob_store(&container);
    store
        .ensure_container()
        .await
        .expect("create the container");
    let (log, writer) = AuditLog::new(store.clone(), "e2e-host-1-ab12".to_owned());
    for event in events() {
        log.clone().record(event);
    }
    assert_eq!(
        writer.shutdown(Duration::from_secs(10)).await,
        0,
        "all lines written"
    );
    let names = list_blobs(store.as_ref(), None).await.expect("list");
    assert_eq!(names.len(), 1, "{names:?}");
    let mut env = app.service_env();
    env.push((AUDIT_CONTAINER_VAR.to_owned(), container));
    let name = names.into_iter().next().expect("one blob");
    (store, env, name)
}

#[tokio::test]
async fn verify_reads_what_the_writer_appended_and_names_an_edited_line() {
    let app = TestApp::spawn().await;
    let (store, env, name) = written_log(&app).await;
    assert!(name.ends_with("/e2e-host-1-ab12.jsonl"), "{name}");

    let run = audit(&env, &["verify"]).await;
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains(&format!("{name}: 6 lines, ok\n")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("blobs: 1, lines: 6, first: "),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("writer e2e-host-1-ab12: 6 lines\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("verified: every chain is intact"),
        "{}",
        run.stdout
    );

    // Rewrite the blob with one character of line 3 changed (storage without immutability).
    let blob = store.read(&name).await.expect("read").expect("the blob");
    let text = String::from_utf8(blob.body).expect("UTF-8");
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    let edited = lines[2].replacen("runner-1", "runner-2", 1);
    assert_ne!(edited, lines[2]);
    lines[2] = &edited;
    store
        .replace(
            &name,
            lines.concat().into_bytes(),
            &blob.metadata,
            &blob.etag,
        )
        .await
        .expect("rewrite the blob");

    let run = audit(&env, &["verify"]).await;
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains(&format!(
            "{name}: 6 lines, PROBLEM: line 4's prev does not match line 3: line 3 was edited"
        )),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("NOT verified: 1 blob(s) with a problem"),
        "{}",
        run.stdout
    );
    app.finish().await;
}

#[tokio::test]
async fn export_writes_the_lines_of_the_days_asked_as_stored() {
    let app = TestApp::spawn().await;
    let (store, env, name) = written_log(&app).await;
    let day = blob_day(&name).expect("a day");
    let next = day.next_day().expect("a next day");
    let after = next.next_day().expect("a day after");

    let run = export(&env, day, next).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let stored = store
        .read(&name)
        .await
        .expect("read")
        .expect("the blob")
        .body;
    assert_eq!(
        run.stdout.as_bytes(),
        stored.as_slice(),
        "the lines as stored"
    );
    assert!(
        run.stderr.contains("exported 6 line(s) from 1 blob(s)"),
        "{}",
        run.stderr
    );

    let run = export(&env, next, after).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stdout, "", "nothing recorded that day");

    // A line that cannot be read is left out, said, and the export does not pass as whole.
    let blob = store.read(&name).await.expect("read").expect("the blob");
    let mut body = blob.body.clone();
    body.extend_from_slice(b"not an audit line\n");
    store
        .replace(&name, body, &blob.metadata, &blob.etag)
        .await
        .expect("rewrite the blob");
    let run = export(&env, day, next).await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("1 line(s) could not be read and were left out"),
        "{}",
        run.stderr
    );
    assert_eq!(
        run.stdout.as_bytes(),
        stored.as_slice(),
        "the rest as stored"
    );
    app.finish().await;
}

#[tokio::test]
async fn usage_and_configuration_mistakes_exit_2_saying_what_is_wrong() {
    let app = TestApp::spawn().await;
    let env = app.service_env();
    let run = audit(&env, &["export", "--since", "2026-11-01"]).await;
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains("export needs --since and --until"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("usage: chatops-runner audit"),
        "{}",
        run.stderr
    );

    let run = audit(&env, &["verify", "--since", "yesterday"]).await;
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr
            .contains("`yesterday` is not a date (YYYY-MM-DD)"),
        "{}",
        run.stderr
    );

    let no_storage: Vec<(String, String)> = env
        .iter()
        .filter(|(k, _)| k != "AZURE_STORAGE_CONNECTION_STRING")
        .cloned()
        .collect();
    let run = audit(&no_storage, &["verify"]).await;
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("configuration error"), "{}", run.stderr);
    assert!(
        run.stderr.contains("AZURE_STORAGE_BLOB_ENDPOINT"),
        "{}",
        run.stderr
    );

    let bad_container = [
        env.clone(),
        vec![(AUDIT_CONTAINER_VAR.to_owned(), "Not_Valid".to_owned())],
    ]
    .concat();
    let run = audit(&bad_container, &["verify"]).await;
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains(AUDIT_CONTAINER_VAR), "{}", run.stderr);
    app.finish().await;
}
