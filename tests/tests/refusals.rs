//! Commands the ingress must refuse however they are dressed: bytes that are not text, and
//! characters that make a command look different from what runs. Each gets an ephemeral answer
//! saying what is wrong, and nothing is queued. So does any command from a workspace the
//! ingress does not serve (`SLACK_TEAM_ID`).

use chatops_e2e::app::{ALICE, OPS, TestApp};
use chatops_shared::audit::AuditEvent;
use chatops_shared::workspaces::Workspaces;

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[tokio::test]
async fn text_that_is_not_utf8_is_refused_not_run_with_replacement_characters() {
    let app = TestApp::spawn().await;
    let body = app.form(ALICE, OPS, "echo hi");
    assert!(body.contains("&text=echo+hi&"), "{body}");
    let body = body.replace("&text=echo+hi&", "&text=echo+%FF%FE&");
    let answer = app.post_signed(body, now()).await;
    assert_eq!(
        answer.status, 200,
        "Slack shows only 200 answers: {answer:?}"
    );
    assert_eq!(answer.response_type(), "ephemeral", "{answer:?}");
    let text = answer.text();
    assert!(
        text.starts_with("Could not read the command: it is not valid UTF-8"),
        "{text}"
    );
    assert!(text.contains("`text`"), "names the field: {text}");
    assert!(
        app.peek_jobs().await.is_empty(),
        "a command that is not text was queued"
    );
    app.finish().await;
}

#[tokio::test]
async fn hidden_characters_in_values_are_refused_naming_the_character_and_where() {
    let app = TestApp::spawn().await;
    // Shown as `echo hi gnp.exe`-like text in Slack; what would run is something else.
    let answer = app.command(ALICE, OPS, "echo \"hi \u{202E}exe.txt\"").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.response_type(), "ephemeral", "{answer:?}");
    let text = answer.text();
    assert!(
        text.contains(
            "The value of `first` contains the invisible character U+202E at character 4"
        ),
        "{text}"
    );
    assert!(text.contains("Usage: `/runbook echo"), "{text}");

    let text = app.command(ALICE, OPS, "ec\u{200B}ho hi").await.text();
    assert!(
        text.contains("The runbook name contains the invisible character U+200B at character 3"),
        "{text}"
    );
    assert!(
        app.peek_jobs().await.is_empty(),
        "a command with a hidden character was queued"
    );
    app.finish().await;
}

#[tokio::test]
async fn values_that_break_a_parameter_rule_are_refused_and_nothing_is_queued() {
    let app = TestApp::spawn().await;
    let cases = [
        (
            "scale 11",
            "`11` is not a valid value for `count`; give a whole number from 1 to 10. Usage: `/runbook scale count=&lt;1..10&gt;`",
        ),
        (
            "scale count=many",
            "`many` is not a valid value for `count`; give a whole number from 1 to 10.",
        ),
        (
            "scale 2 group=rg-dev",
            "`group` is set by the catalog and cannot be given; remove group=… from the command.",
        ),
    ];
    // Answers are Slack markup: `<` and `>` are escaped.
    for (command, want) in cases {
        let answer = app.command(ALICE, OPS, command).await;
        assert_eq!(answer.status, 200, "{command}: {answer:?}");
        assert_eq!(answer.response_type(), "ephemeral", "{command}: {answer:?}");
        let text = answer.text();
        assert!(text.starts_with(want), "{command}: {text}");
    }
    assert!(
        app.peek_jobs().await.is_empty(),
        "a command that breaks a parameter rule was queued"
    );

    // Within the rules it is queued, with the value written plainly and without the fixed
    // one (the runner adds that from its own catalog).
    let answer = app.command(ALICE, OPS, "scale 007").await;
    assert_eq!(answer.response_type(), "in_channel", "{answer:?}");
    let jobs = app.take_jobs().await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(
        jobs[0].params.iter().collect::<Vec<_>>(),
        [(&"count".to_owned(), &"7".to_owned())]
    );
    app.finish().await;
}

#[tokio::test]
async fn a_command_from_a_workspace_not_listed_is_refused_and_nothing_is_queued() {
    // The test form comes from team T0TEST.
    let app =
        TestApp::spawn_with(Workspaces::new(Some(vec!["T0OTHER"]), None::<Vec<String>>)).await;
    for text in ["echo hi", "status", "history"] {
        let answer = app.command(ALICE, OPS, text).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(answer.response_type(), "ephemeral", "{answer:?}");
        let said = answer.text();
        assert!(
            said.contains("workspace (T0TEST) is not allowed to use this app"),
            "{text}: {said}"
        );
        assert!(!said.contains("T0OTHER"), "our list leaked: {said}");
    }
    assert!(
        app.peek_jobs().await.is_empty(),
        "a refused command was queued"
    );
    let events = app.audit_events(3).await;
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(
        events[0],
        AuditEvent::Denied {
            user_id: ALICE.to_owned(),
            channel_id: OPS.to_owned(),
            runbook: "echo".to_owned(),
            rule: "team".to_owned(),
        }
    );
    app.finish().await;
}

#[tokio::test]
async fn a_command_from_a_listed_workspace_is_queued() {
    let app = TestApp::spawn_with(Workspaces::new(
        Some(vec!["T0OTHER", "T0TEST"]),
        None::<Vec<String>>,
    ))
    .await;
    let answer = app.command(ALICE, OPS, "echo hi").await;
    assert!(!answer.text().contains("not allowed"), "{answer:?}");
    assert_eq!(app.take_jobs().await.len(), 1, "{answer:?}");
    app.finish().await;
}
