//! The catalog in force changes while the services run: jobs queued under the old one are
//! checked again under the new one, and the binaries reload on SIGHUP, refusing a bad catalog
//! with its place and keeping the old one.

// Test code: a failed step should stop the test with its message.
#![allow(clippy::expect_used)]

use chatops_e2e::app::{ALICE, OPS, TestApp};
use chatops_e2e::process::Service;
use chatops_shared::catalog::Reloaded;
use std::time::Duration;

/// The test catalog with the `[runbooks.NAME]` table left out.
fn without(text: &str, name: &str) -> String {
    let header = format!("[runbooks.{name}]");
    let start = text.find(&header).expect("the runbook is in the catalog");
    let end = text[start + header.len()..]
        .find("\n[")
        .map_or(text.len(), |i| start + header.len() + i + 1);
    format!("{}{}", &text[..start], &text[end..])
}

#[tokio::test]
async fn a_job_whose_runbook_was_removed_while_it_was_queued_is_refused_saying_the_catalog_changed()
{
    let app = TestApp::spawn().await;
    let answer = app.command(ALICE, OPS, "deploy web dev").await;
    assert_eq!(answer.response_type(), "in_channel", "{answer:?}");
    let id = TestApp::short_id(&answer);

    let path = app.dir.join("runbooks.toml");
    let text = std::fs::read_to_string(&path).expect("read catalog");
    std::fs::write(&path, without(&text, "deploy")).expect("write catalog");
    assert!(matches!(
        app.live_catalog.reload().expect("the new catalog loads"),
        Reloaded::Changed { .. }
    ));

    app.drain(&app.worker()).await;
    let text = app.final_text(&id, "*Refused*").await;
    assert!(
        text.contains("`deploy` is not in this runner's catalog")
            && text.contains("the catalog changed since the command was accepted"),
        "{text}"
    );
    assert!(!text.contains("args:"), "nothing ran: {text}");
    // The ingress checks new commands against the new catalog too.
    let answer = app.command(ALICE, OPS, "deploy web dev").await;
    assert_eq!(answer.response_type(), "ephemeral", "{answer:?}");
    app.finish().await;
}

fn hangup(service: &Service) {
    let pid = service.pid().expect("running");
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

#[tokio::test]
async fn the_binaries_reload_on_sighup_and_keep_the_old_catalog_when_the_new_one_is_bad() {
    let app = TestApp::spawn().await;
    let mut env = app.service_env();
    // Only the signal reloads in this test.
    env.push(("CHATOPS_CATALOG_POLL".into(), "1h".into()));
    let mut ingress = Service::start("chatops-ingress", &env);
    let mut runner = Service::start("chatops-runner", &env);
    ingress.bound_addr().await;
    runner.bound_addr().await;

    let path = app.dir.join("runbooks.toml");
    let good = std::fs::read_to_string(&path).expect("read catalog");
    assert!(good.ends_with('\n'));
    // `executor` on the third line added, at column 12.
    let bad = format!("{good}[runbooks.oops]\ntarget = \"x\"\nexecutor = \"remote\"\n");
    let place = format!("{}:{}:12: ", path.display(), good.lines().count() + 3);
    std::fs::write(&path, &bad).expect("write catalog");
    for service in [&ingress, &runner] {
        hangup(service);
        let line = service
            .wait_for_line(|l| l.contains("is refused"), Duration::from_secs(10))
            .await;
        assert!(line.contains(&place), "{line}");
        assert!(line.contains("unknown variant `remote`"), "{line}");
    }
    let renamed = good.replace("[runbooks.echo]", "[runbooks.say]");
    std::fs::write(&path, &renamed).expect("write catalog");
    for service in [&ingress, &runner] {
        hangup(service);
        let line = service
            .wait_for_line(|l| l.contains("catalog reloaded"), Duration::from_secs(10))
            .await;
        assert!(line.contains("SIGHUP"), "{line}");
    }
    // Still running after the signals (SIGHUP's default would have ended them).
    assert_eq!(ingress.terminate(Duration::from_secs(15)).await, Some(0));
    assert_eq!(runner.terminate(Duration::from_secs(15)).await, Some(0));
    app.finish().await;
}
