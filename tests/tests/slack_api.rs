//! The shared Slack Web API client against the Slack double: what every bot-token feature
//! (job cards, modals, user-group lookups) stands on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chatops_e2e::slack::{BOT_TOKEN, SlackServer};
use chatops_shared::secret::Secret;
use chatops_shared::slack_api::{SlackApi, SlackApiError};
use serde_json::json;
use std::time::Duration;
use tokio::time::Instant;

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

async fn client(slack: &SlackServer, token: &str) -> SlackApi {
    SlackApi::new(Secret::new(token), &slack.api_base_url()).unwrap()
}

#[tokio::test]
async fn a_message_is_posted_updated_and_replied_to_in_its_thread() {
    let slack = SlackServer::start().await;
    slack.join("C1");
    let api = client(&slack, BOT_TOKEN).await;
    let posted = api
        .post_message("C1", &json!({"text": "queued"}), None, soon())
        .await
        .unwrap();
    api.update_message(&posted, &json!({"text": "running"}), None, soon())
        .await
        .unwrap();
    api.post_message(
        "C1",
        &json!({"text": "output", "thread_ts": posted.ts}),
        None,
        soon(),
    )
    .await
    .unwrap();
    let shown = slack.channel_messages("C1");
    assert_eq!(shown.len(), 2);
    assert_eq!(shown[0].body["text"], "running");
    assert_eq!(shown[0].updates, 1);
    assert_eq!(shown[1].thread_ts.as_deref(), Some(posted.ts.as_str()));
}

#[tokio::test]
async fn slacks_refusals_come_back_as_their_codes() {
    let slack = SlackServer::start().await;
    slack.join("C1");
    let api = client(&slack, BOT_TOKEN).await;
    let err = api
        .post_message("C2", &json!({"text": "x"}), None, soon())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("not_in_channel"));
    let posted = api
        .post_message("C1", &json!({"text": "x"}), None, soon())
        .await
        .unwrap();
    slack.delete_message(&posted.ts);
    let err = api
        .update_message(&posted, &json!({"text": "y"}), None, soon())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("message_not_found"));
    slack.remove_channel("C1");
    let err = api
        .post_message("C1", &json!({"text": "x"}), None, soon())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("channel_not_found"));
    let wrong = client(&slack, "xoxb-wrong").await;
    let err = wrong
        .usergroup_members("S1", None, soon())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("invalid_auth"));
}

#[tokio::test]
async fn a_rate_limit_is_waited_out_and_user_groups_are_listed() {
    let slack = SlackServer::start().await;
    slack.set_usergroup("S1", &["U1", "U2"]);
    slack.set_retry_after(1);
    slack.fail_method_next(
        "usergroups.users.list",
        1,
        429,
        r#"{"ok":false,"error":"ratelimited"}"#,
    );
    let api = client(&slack, BOT_TOKEN).await;
    let members = api.usergroup_members("S1", None, soon()).await.unwrap();
    assert_eq!(members, vec!["U1", "U2"]);
    assert_eq!(slack.api_calls("usergroups.users.list").len(), 2);
    let err = api.usergroup_members("S9", None, soon()).await.unwrap_err();
    assert_eq!(
        err,
        SlackApiError::Slack {
            method: "usergroups.users.list".into(),
            error: "no_such_subgroup".into()
        }
    );
}

#[tokio::test]
async fn a_trigger_opens_one_modal_once() {
    let slack = SlackServer::start().await;
    let api = client(&slack, BOT_TOKEN).await;
    let trigger = slack.trigger_id();
    let view =
        json!({"type": "modal", "title": {"type": "plain_text", "text": "Run"}, "blocks": []});
    api.open_view(&trigger, &view, soon()).await.unwrap();
    let err = api.open_view(&trigger, &view, soon()).await.unwrap_err();
    assert_eq!(err.code(), Some("exchanged_trigger_id"));
    let err = api.open_view("forged", &view, soon()).await.unwrap_err();
    assert_eq!(err.code(), Some("invalid_trigger_id"));
}
