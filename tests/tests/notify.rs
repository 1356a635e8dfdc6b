//! `SlackNotifier` against the Slack double: which path each update takes, and how Slack's
//! failures are handled.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chatops_e2e::slack::{PathKind, SlackServer};
use chatops_runner::executor::{FinalState, Outcome};
use chatops_runner::notify::slack::{SlackNotifier, SlackNotifierConfig};
use chatops_runner::notify::{Notifier, NotifyError, Update};
use chatops_shared::job::{JobKind, JobMessage, SCHEMA_VERSION};
use chatops_shared::secret::Secret;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(10);

fn notifier(slack: &SlackServer, webhook: bool) -> SlackNotifier {
    SlackNotifier::new(SlackNotifierConfig {
        webhook_url: webhook.then(|| Secret::new(slack.webhook_url())),
        response_url_prefix: slack.base_url(),
    })
    .unwrap()
}

fn job(response_url: String, age: time::Duration) -> JobMessage {
    JobMessage {
        schema: SCHEMA_VERSION,
        job_id: Uuid::new_v4(),
        kind: JobKind::Run,
        runbook: "restart-web".into(),
        params: BTreeMap::from([("env".into(), "prod".into())]),
        user_id: "U0123".into(),
        user_name: "ana".into(),
        team_id: "T000".into(),
        channel_id: "C0456".into(),
        channel_name: Some("ops".into()),
        response_url: Some(Secret::new(response_url)),
        requested_at: OffsetDateTime::now_utc() - age,
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

fn running() -> Update {
    Update::Running {
        started_at: OffsetDateTime::now_utc(),
    }
}

fn finished() -> Update {
    let now = OffsetDateTime::now_utc();
    Update::Finished(Outcome {
        state: FinalState::Completed,
        output: "done\n".into(),
        error: None,
        started_at: Some(now - time::Duration::seconds(72)),
        ended_at: now,
        stopped_by: None,
    })
}

/// Errors name the path and Slack's code, never a URL.
fn assert_no_url(e: &NotifyError) {
    let text = format!("{e} {e:?}");
    for leak in ["http", "127.0.0.1", "/services/", "/commands/", "XXXX"] {
        assert!(!text.contains(leak), "error leaks `{leak}`: {text}");
    }
}

#[tokio::test]
async fn updates_replace_the_original_through_the_response_url() {
    let slack = SlackServer::start().await;
    let n = notifier(&slack, true);
    let j = job(slack.response_url(), time::Duration::ZERO);

    n.notify(&j, &running()).await.unwrap();
    n.notify(&j, &finished()).await.unwrap();

    let got = slack.wait_for(|m| m.len() == 2, WAIT).await;
    assert!(
        got.iter()
            .all(|m| m.kind == PathKind::ResponseUrl && m.delivered())
    );
    for m in &got {
        assert_eq!(m.body["response_type"], "in_channel");
        assert_eq!(m.body["replace_original"], true);
        assert_eq!(
            m.path,
            url::Url::parse(j.response_url.as_ref().unwrap().expose())
                .unwrap()
                .path()
        );
    }
    assert!(
        got[0]
            .text()
            .starts_with(":arrow_forward: <@U0123> started *restart-web* `env=prod`"),
        "{}",
        got[0].text()
    );
    assert!(
        got[1].text().contains("*Completed* in 1m 12s"),
        "{}",
        got[1].text()
    );
    assert!(slack.messages_to(PathKind::Webhook).is_empty());
}

#[tokio::test]
async fn the_sixth_update_goes_to_the_webhook() {
    let slack = SlackServer::start().await;
    let n = notifier(&slack, true);
    let j = job(slack.response_url(), time::Duration::ZERO);

    for _ in 0..6 {
        n.notify(&j, &running()).await.unwrap();
    }

    let got = slack.wait_for(|m| m.len() == 6, WAIT).await;
    let kinds: Vec<_> = got.iter().map(|m| m.kind).collect();
    assert_eq!(
        kinds,
        [[PathKind::ResponseUrl; 5].as_slice(), &[PathKind::Webhook]].concat()
    );
    assert!(
        got.iter().all(|m| m.delivered()),
        "the notifier counts uses itself: {got:#?}"
    );
    assert!(
        got[5]
            .text()
            .starts_with("from <#C0456>: :arrow_forward: <@U0123> started"),
        "{}",
        got[5].text()
    );
}

#[tokio::test]
async fn a_response_url_slack_refuses_is_dropped_for_the_webhook() {
    let slack = SlackServer::start().await;
    let url = slack.response_url();
    let j = job(url.clone(), time::Duration::ZERO);
    // Another runner (say, before a redelivery) used the URL up.
    let first = notifier(&slack, true);
    for _ in 0..5 {
        first.notify(&j, &running()).await.unwrap();
    }

    let second = notifier(&slack, true);
    second.notify(&j, &running()).await.unwrap();
    second.notify(&j, &finished()).await.unwrap();

    let got = slack.wait_for(|m| m.len() == 8, WAIT).await;
    let refused = &got[5];
    assert_eq!(
        (refused.kind, refused.status),
        (PathKind::ResponseUrl, 404),
        "Slack's 6th use answer"
    );
    assert_eq!(refused.body["replace_original"], true);
    assert_eq!((got[6].kind, got[6].status), (PathKind::Webhook, 200));
    assert_eq!(
        (got[7].kind, got[7].status),
        (PathKind::Webhook, 200),
        "not tried again after the 404"
    );
    assert!(got[7].text().contains("*Completed*"));
}

#[tokio::test]
async fn a_job_given_a_secret_value_is_not_reported_in_the_webhooks_channel() {
    let slack = SlackServer::start().await;
    let n = notifier(&slack, true);
    let mut j = job(slack.response_url(), time::Duration::minutes(31));
    j.params.insert("token".into(), "hunter2".into());
    j.secret_params = vec!["token".into()];
    n.notify(&j, &finished()).await.unwrap();
    // The same job without its secret: to the webhook.
    let mut plain = j.clone();
    plain.params.remove("token");
    n.notify(&plain, &finished()).await.unwrap();
    // Each notify returned once its message was delivered, or not sent.
    let got = slack.messages();
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].kind, PathKind::Webhook);
    assert!(!got[0].text().contains("token"), "{}", got[0].text());
}

#[tokio::test]
async fn an_expired_response_url_is_not_tried() {
    let slack = SlackServer::start().await;
    let n = notifier(&slack, true);
    let j = job(slack.response_url(), time::Duration::minutes(31));

    n.notify(&j, &finished()).await.unwrap();

    let got = slack.wait_for(|m| !m.is_empty(), WAIT).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].kind, PathKind::Webhook);
    assert_eq!(
        got[0].body.as_object().unwrap().len(),
        1,
        "a webhook message is only text"
    );
    assert!(
        got[0]
            .text()
            .starts_with("from <#C0456>: :white_check_mark: <@U0123> ran *restart-web*"),
        "{}",
        got[0].text()
    );
}

#[tokio::test]
async fn rate_limits_are_waited_out_and_nothing_is_dropped() {
    for kind in [PathKind::ResponseUrl, PathKind::Webhook] {
        let slack = SlackServer::start().await;
        let n = notifier(&slack, true);
        let age = if kind == PathKind::Webhook {
            time::Duration::hours(1)
        } else {
            time::Duration::ZERO
        };
        let j = job(slack.response_url(), age);
        slack.fail_next(kind, 1, 429, "rate_limited");

        let started = Instant::now();
        n.notify(&j, &running()).await.unwrap();
        let elapsed = started.elapsed();

        let got = slack.wait_for(|m| m.len() == 2, WAIT).await;
        assert!(
            elapsed >= Duration::from_secs(1),
            "{kind:?}: Retry-After: 1 not honoured ({elapsed:?})"
        );
        assert!(got[1].at - got[0].at >= Duration::from_secs(1));
        assert_eq!((got[0].kind, got[0].status), (kind, 429));
        assert_eq!((got[1].kind, got[1].status), (kind, 200));
        assert_eq!(
            got[0].body, got[1].body,
            "{kind:?}: the same message is sent again"
        );
    }
}

#[tokio::test]
async fn rate_limiting_beyond_what_we_wait_for_is_transient() {
    let slack = SlackServer::start().await;
    let n = notifier(&slack, true);
    let j = job(slack.response_url(), time::Duration::hours(1));
    slack.fail_next(PathKind::Webhook, 10, 429, "rate_limited");

    let e = n.notify(&j, &running()).await.unwrap_err();

    assert!(
        matches!(&e, NotifyError::RateLimited { detail, .. } if detail.starts_with("webhook: rate limited")),
        "{e:?}"
    );
    assert_eq!(slack.messages().len(), 3, "at most 3 tries");
    assert_no_url(&e);

    // Slack asking for more than the per-call limit is not waited for in the call: the caller
    // is told how long Slack asked it to wait.
    slack.set_retry_after(120);
    let started = Instant::now();
    let e = n.notify(&j, &running()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        matches!(e, NotifyError::RateLimited { retry_after, .. }
                if retry_after > Duration::from_secs(119) && retry_after <= Duration::from_secs(120)),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_webhook_rate_limit_holds_back_the_next_job_too() {
    let slack = SlackServer::start().await;
    let n = std::sync::Arc::new(notifier(&slack, true));
    slack.set_retry_after(2);
    slack.fail_next(PathKind::Webhook, 1, 429, "rate_limited");
    // Two jobs whose response_urls have expired: both go to the one webhook.
    let a = job(slack.response_url(), time::Duration::minutes(31));
    let b = job(slack.response_url(), time::Duration::minutes(31));
    let first = {
        let n = n.clone();
        tokio::spawn(async move { n.notify(&a, &finished()).await })
    };
    slack
        .wait_for(
            |all| all.iter().any(|m| m.status == 429),
            Duration::from_secs(5),
        )
        .await;
    // Job B comes while Slack's wait for job A runs (well after A's notifier read the 429:
    // the server records it a moment before the client sees it): B must not post before the
    // wait ends.
    tokio::time::sleep(Duration::from_millis(300)).await;
    n.notify(&b, &finished()).await.unwrap();
    first.await.unwrap().unwrap();
    let messages = slack.messages_to(PathKind::Webhook);
    let limited = messages
        .iter()
        .find(|m| m.status == 429)
        .map(|m| m.at)
        .unwrap();
    let delivered: Vec<_> = messages.iter().filter(|m| m.status == 200).collect();
    assert_eq!(delivered.len(), 2, "{messages:#?}");
    for m in delivered {
        assert!(
            m.at.duration_since(limited) >= Duration::from_secs(2),
            "a post went out {:?} after the 429",
            m.at.duration_since(limited)
        );
    }
}

#[tokio::test]
async fn an_archived_webhook_channel_is_permanent() {
    let slack = SlackServer::start().await;
    let n = notifier(&slack, true);
    let j = job(slack.response_url(), time::Duration::hours(1));
    slack.fail_next(PathKind::Webhook, 1, 410, "channel_is_archived");

    let e = n.notify(&j, &finished()).await.unwrap_err();

    assert_eq!(
        e,
        NotifyError::Permanent("webhook: HTTP 410 channel_is_archived".into())
    );
    assert_eq!(slack.messages().len(), 1, "a 4xx is not retried");
    assert_no_url(&e);
}

#[tokio::test]
async fn a_failing_webhook_is_retried_then_transient() {
    let slack = SlackServer::start().await;
    let n = notifier(&slack, true);
    let j = job(slack.response_url(), time::Duration::hours(1));
    slack.fail_next(PathKind::Webhook, 3, 500, "rollup_error");

    let e = n.notify(&j, &finished()).await.unwrap_err();

    assert_eq!(
        e,
        NotifyError::Transient("webhook: HTTP 500 rollup_error".into())
    );
    assert_eq!(slack.messages().len(), 3, "the first try and two retries");
    assert_no_url(&e);

    // Slack recovers: the same update goes through when the runner tries again.
    let got = slack.messages();
    n.notify(&j, &finished()).await.unwrap();
    assert_eq!(slack.messages().len(), got.len() + 1);
}

#[tokio::test]
async fn a_failing_response_url_is_transient_without_naming_it() {
    let slack = SlackServer::start().await;
    let n = notifier(&slack, true);
    let j = job(slack.response_url(), time::Duration::ZERO);
    slack.fail_next(PathKind::ResponseUrl, 3, 503, "");

    let e = n.notify(&j, &running()).await.unwrap_err();

    assert_eq!(e, NotifyError::Transient("response_url: HTTP 503".into()));
    assert_no_url(&e);
    assert!(slack.messages_to(PathKind::Webhook).is_empty());
}

#[tokio::test]
async fn an_invalid_payload_is_permanent() {
    let slack = SlackServer::start().await;
    let n = notifier(&slack, true);
    let j = job(slack.response_url(), time::Duration::hours(1));
    slack.fail_next(PathKind::Webhook, 1, 400, "invalid_payload");

    let e = n.notify(&j, &running()).await.unwrap_err();

    assert_eq!(
        e,
        NotifyError::Permanent("webhook: HTTP 400 invalid_payload".into())
    );
    assert_no_url(&e);
}

#[tokio::test]
async fn a_forged_response_url_is_never_contacted() {
    let slack = SlackServer::start().await;
    let elsewhere = SlackServer::start().await;
    let n = notifier(&slack, true);
    let j = job(elsewhere.response_url(), time::Duration::ZERO);

    n.notify(&j, &running()).await.unwrap();
    n.notify(&j, &finished()).await.unwrap();

    let got = slack.wait_for(|m| m.len() == 2, WAIT).await;
    assert!(
        got.iter()
            .all(|m| m.kind == PathKind::Webhook && m.delivered())
    );
    assert!(
        elsewhere.messages().is_empty(),
        "the forged URL was contacted"
    );
}

#[tokio::test]
async fn without_a_webhook_a_used_up_response_url_leaves_the_log() {
    let slack = SlackServer::start().await;
    let n = notifier(&slack, false);
    let j = job(slack.response_url(), time::Duration::ZERO);
    slack.fail_next(
        PathKind::ResponseUrl,
        1,
        404,
        r#"{"ok":false,"error":"expired_url"}"#,
    );

    n.notify(&j, &running()).await.unwrap();
    n.notify(&j, &finished()).await.unwrap();

    assert_eq!(
        slack.messages().len(),
        1,
        "not tried after the 404; the log gets the rest"
    );
}

#[tokio::test]
async fn the_slack_double_answers_like_slack() {
    let slack = SlackServer::start().await;
    let http = reqwest::Client::new();
    let post = |url: String, body: &'static str| {
        let request = http
            .post(url)
            .header("content-type", "application/json")
            .body(body);
        async move {
            let r = request.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };

    assert_eq!(
        post(slack.webhook_url(), r#"{"text":"hi"}"#).await,
        (200, "ok".into())
    );
    assert_eq!(
        post(slack.webhook_url(), "text=hi").await,
        (400, "invalid_payload".into())
    );
    assert_eq!(
        post(slack.webhook_url(), r#"{"channel":"C1"}"#).await,
        (400, "invalid_payload".into())
    );
    let other = slack.webhook_url().replace("XXXX", "YYYY");
    assert_eq!(
        post(other, r#"{"text":"hi"}"#).await,
        (404, "no_service".into())
    );

    let url = slack.response_url();
    for _ in 0..5 {
        assert_eq!(
            post(url.clone(), r#"{"text":"hi"}"#).await,
            (200, r#"{"ok":true}"#.into())
        );
    }
    assert_eq!(
        post(url, r#"{"text":"hi"}"#).await,
        (404, r#"{"error":"used_url","ok":false}"#.into())
    );
    let url = slack.response_url();
    slack.expire(&url);
    assert_eq!(
        post(url, r#"{"text":"hi"}"#).await,
        (404, r#"{"error":"expired_url","ok":false}"#.into())
    );
    assert_eq!(slack.messages().len(), 11);
}

#[tokio::test]
async fn an_endless_answer_is_read_only_to_its_start() {
    let slack = SlackServer::start().await;
    let n = notifier(&slack, true);
    let j = job(String::new(), time::Duration::ZERO);
    slack.answer_endlessly_next(PathKind::Webhook);

    let started = Instant::now();
    n.notify(&j, &running()).await.unwrap();

    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the answer was read for {:?}",
        started.elapsed()
    );
    assert_eq!(slack.messages_to(PathKind::Webhook).len(), 1);
}
