#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use serde_json::json;
use std::sync::Mutex;

/// What the test server answers, in order, and what it saw.
#[derive(Default)]
struct Script {
    answers: Mutex<Vec<(u16, Option<u64>, String)>>,
    seen: Mutex<Vec<(String, Option<String>, String)>>,
    /// When each call came.
    at: Mutex<Vec<Instant>>,
}

async fn answer(
    State(script): State<Arc<Script>>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: String,
) -> impl IntoResponse {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    script.seen.lock().unwrap().push((method, auth, body));
    script.at.lock().unwrap().push(Instant::now());
    let (status, retry_after, text) = script.answers.lock().unwrap().remove(0);
    let mut response = (StatusCode::from_u16(status).unwrap(), text).into_response();
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", secs.to_string().parse().unwrap());
    }
    response
}

async fn server(answers: Vec<(u16, Option<u64>, &str)>) -> (SlackApi, Arc<Script>) {
    let script = Arc::new(Script::default());
    *script.answers.lock().unwrap() = answers
        .into_iter()
        .map(|(s, r, t)| (s, r, t.to_string()))
        .collect();
    let app = Router::new()
        .route("/api/{method}", post(answer))
        .with_state(script.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let api = SlackApi::new(
        Secret::new("xoxb-test-token"),
        &format!("http://{addr}/api/"),
    )
    .unwrap();
    (api, script)
}

fn soon(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

#[tokio::test]
async fn ok_false_is_slacks_error_code_and_the_token_is_sent_as_bearer_only() {
    let (api, script) = server(vec![(
        200,
        None,
        r#"{"ok":false,"error":"not_in_channel"}"#,
    )])
    .await;
    let err = api
        .post_message("C1", &json!({"text": "hi"}), None, soon(5))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("not_in_channel"));
    assert!(!err.is_transient());
    assert!(!err.to_string().contains("xoxb"));
    let seen = script.seen.lock().unwrap();
    assert_eq!(seen[0].0, "chat.postMessage");
    assert_eq!(seen[0].1.as_deref(), Some("Bearer xoxb-test-token"));
    let body: Value = serde_json::from_str(&seen[0].2).unwrap();
    assert_eq!(body, json!({"channel": "C1", "text": "hi"}));
}

#[tokio::test]
async fn a_429_is_waited_out_and_the_call_goes_again() {
    let (api, script) = server(vec![
        (429, Some(1), r#"{"ok":false,"error":"ratelimited"}"#),
        (200, None, r#"{"ok":true,"channel":"C1","ts":"1.0002"}"#),
    ])
    .await;
    let started = Instant::now();
    let posted = api
        .post_message("C1", &json!({"text": "x"}), None, soon(5))
        .await
        .unwrap();
    assert_eq!(
        posted,
        Posted {
            channel: "C1".into(),
            ts: "1.0002".into()
        }
    );
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was not honoured"
    );
    assert_eq!(script.seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_paced_call_answered_429_goes_again_in_a_new_turn_not_with_the_next_call() {
    let ok = r#"{"ok":true,"channel":"C1","ts":"1.0002"}"#;
    let (api, script) = server(vec![(429, Some(1), ""), (200, None, ok), (200, None, ok)]).await;
    let pace = Pace {
        key: "post:C1",
        interval: Duration::from_secs(1),
    };
    let first = {
        let api = api.clone();
        tokio::spawn(async move {
            api.post_message("C1", &json!({"text": "a"}), Some(pace), soon(10))
                .await
        })
    };
    while script.at.lock().unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Queued on the same channel while the first call waits out its 429.
    api.post_message("C1", &json!({"text": "b"}), Some(pace), soon(10))
        .await
        .unwrap();
    first.await.unwrap().unwrap();
    let at = script.at.lock().unwrap().clone();
    assert_eq!(at.len(), 3);
    // The hold's end lets one call go; the other waits its interval after it.
    assert!(at[1] - at[0] >= Duration::from_millis(950), "{at:?}");
    assert!(at[2] - at[1] >= Duration::from_millis(950), "{at:?}");

    // A hold that outlasts a paced call's deadline: rate-limited, Slack not asked.
    api.inner
        .pacer
        .hold(POST_MESSAGE, Instant::now() + Duration::from_secs(30));
    let err = api
        .post_message("C1", &json!({"text": "c"}), Some(pace), soon(5))
        .await
        .unwrap_err();
    assert!(matches!(err, SlackApiError::RateLimited { .. }), "{err:?}");
    assert_eq!(script.at.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_429_longer_than_the_deadline_fails_at_once_and_holds_the_method_for_others() {
    let (api, script) = server(vec![(429, Some(30), "")]).await;
    let err = api
        .call("chat.update", &json!({}), soon(2))
        .await
        .unwrap_err();
    assert!(matches!(err, SlackApiError::RateLimited { .. }), "{err:?}");
    assert!(err.is_transient());
    // Another caller of the same method does not ask Slack while it said to wait.
    let err = api
        .call("chat.update", &json!({}), soon(2))
        .await
        .unwrap_err();
    assert!(matches!(err, SlackApiError::RateLimited { .. }), "{err:?}");
    assert_eq!(script.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_server_error_is_retried_within_the_deadline() {
    let (api, _) = server(vec![
        (503, None, "down"),
        (200, None, r#"{"ok":true,"users":["U1","U2"]}"#),
    ])
    .await;
    let members = api.usergroup_members("S1", None, soon(5)).await.unwrap();
    assert_eq!(members, vec!["U1", "U2"]);
}

#[tokio::test]
async fn server_errors_are_retried_with_a_growing_wait() {
    let (api, script) = server(vec![(503, None, "down"); 40]).await;
    let started = Instant::now();
    let failed = api.usergroup_members("S1", None, soon(3)).await;
    assert!(failed.is_err());
    // 200 ms, 400, 800, 1600 (each less up to half): a handful of calls in 3 s, not one every
    // 200 ms.
    let calls = script.seen.lock().unwrap().len();
    assert!(
        (2..=6).contains(&calls),
        "{calls} calls in {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_answer_that_is_not_slacks_json_is_a_bad_answer() {
    let (api, _) = server(vec![(200, None, "<html>proxy</html>")]).await;
    let err = api.open_view("T", &json!({}), soon(5)).await.unwrap_err();
    assert_eq!(err, SlackApiError::BadAnswer("views.open".into()));
}

#[tokio::test(start_paused = true)]
async fn pacing_spaces_calls_per_key_and_not_across_keys() {
    let api = SlackApi::new(Secret::new("t"), DEFAULT_BASE_URL).unwrap();
    let start = Instant::now();
    let far = start + Duration::from_secs(60);
    for _ in 0..3 {
        api.pace("post:C1", Duration::from_secs(1), "chat.postMessage", far)
            .await
            .unwrap();
    }
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    api.pace("post:C2", Duration::from_secs(1), "chat.postMessage", far)
        .await
        .unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn calls_held_by_a_429_go_one_by_one_after_it_not_together() {
    let api = SlackApi::new(Secret::new("t"), DEFAULT_BASE_URL).unwrap();
    let start = Instant::now();
    let far = start + Duration::from_secs(60);
    api.inner
        .pacer
        .hold("chat.postMessage", start + Duration::from_secs(5));
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let api = api.clone();
            tokio::spawn(async move {
                api.pace("post:C1", Duration::from_secs(1), "chat.postMessage", far)
                    .await
                    .unwrap();
                start.elapsed()
            })
        })
        .collect();
    let mut went = Vec::new();
    for call in calls {
        went.push(call.await.unwrap());
    }
    went.sort();
    let secs: Vec<u64> = went.iter().map(Duration::as_secs).collect();
    assert_eq!(secs, [5, 6, 7]);
    // A hold past the caller's deadline is not waited here: the call says rate-limited.
    api.inner
        .pacer
        .hold("chat.update", start + Duration::from_secs(120));
    api.pace("update:T1", Duration::from_secs(1), "chat.update", far)
        .await
        .unwrap();
    assert_eq!(start.elapsed().as_secs(), 7);
    // A turn after the caller's deadline is not waited for, nor taken from the next caller.
    let soon = Instant::now() + Duration::from_millis(500);
    assert!(
        api.pace("post:C1", Duration::from_secs(1), "chat.postMessage", soon)
            .await
            .is_err()
    );
    assert_eq!(start.elapsed().as_secs(), 7, "not waited for");
    api.pace("post:C1", Duration::from_secs(1), "chat.postMessage", far)
        .await
        .unwrap();
    assert_eq!(
        start.elapsed().as_secs(),
        8,
        "the turn after the last call that went"
    );
}

#[test]
fn configuration_needs_a_bot_token_and_an_http_base_url() {
    use std::collections::HashMap;
    let none: HashMap<&str, &str> = HashMap::new();
    assert!(from_env(&none).unwrap().is_none());
    let user_token = HashMap::from([(TOKEN_VAR, "xoxp-1")]);
    let err = from_env(&user_token).unwrap_err();
    assert_eq!(err.var, TOKEN_VAR);
    assert!(!err.to_string().contains("xoxp-1"));
    let bad_base = HashMap::from([(TOKEN_VAR, "xoxb-1"), (BASE_URL_VAR, "ftp://x")]);
    assert_eq!(from_env(&bad_base).unwrap_err().var, BASE_URL_VAR);
    let good = HashMap::from([
        (TOKEN_VAR, "xoxb-1"),
        (BASE_URL_VAR, "http://127.0.0.1:1/api"),
    ]);
    assert!(from_env(&good).unwrap().is_some());
}
