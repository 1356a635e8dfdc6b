//! A test server that plays Slack at its HTTP boundary: the commands' `response_url`s and an
//! incoming webhook, with knobs to make them fail the way Slack does.
//!
//! What it answers (see `/work/shared/reference/slack.md`):
//! - `POST /commands/{team}/{id}/{token}` (a `response_url` minted by [`SlackServer::response_url`]):
//!   200 `{"ok":true}` (JSON, the shape python-slack-sdk's `WebhookClient` and Sentry's Slack
//!   integration read back). Slack allows 5 posts per URL: the 6th and later get 404
//!   `{"ok":false,"error":"used_url"}`; a URL marked with [`SlackServer::expire`], or one this
//!   server never minted, gets 404 `{"ok":false,"error":"expired_url"}`. A body that is not a
//!   JSON object with `text` or `blocks` gets 400 `{"ok":false,"error":"invalid_payload"}`.
//! - `POST /services/T000/B000/XXXX` (the incoming webhook): 200 `ok` (text); 400
//!   `invalid_payload` for a body that is not JSON with `text` or `blocks`; any other
//!   `/services/…` path gets 404 `no_service`.
//! - [`SlackServer::fail_next`] makes the next `n` posts of one kind answer a given status and
//!   body instead; a 429 carries `Retry-After` ([`SlackServer::set_retry_after`], default 1 s).
//!
//! - `POST /api/{method}`: the Web API with the bot token [`BOT_TOKEN`] (see `api`): HTTP 200
//!   with `{"ok": …}`, `not_authed` / `invalid_auth` for a missing or wrong token,
//!   `unknown_method` for a method this double does not play. [`SlackServer::fail_method_next`]
//!   injects answers (a 429 with `Retry-After`, an `ok: false`) for one method.
//!
//! Every post is recorded, whatever it was answered, and [`SlackServer::wait_for`] waits for the
//! record to satisfy a condition instead of sleeping.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

mod api;

pub use api::{BOT_TOKEN, ChatMessage, MAX_BLOCKS, MAX_MESSAGE_CHARS, MAX_SECTION_CHARS, Rate};

/// Which Slack endpoint a post went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PathKind {
    ResponseUrl,
    Webhook,
    /// A Web API call; the method is the message's `path`.
    Api,
}

/// One post received.
#[derive(Debug, Clone)]
pub struct Message {
    pub kind: PathKind,
    /// The request path (for a `response_url`, which one; for a Web API call, the method).
    pub path: String,
    /// The body as JSON (a Web API form as an object of strings); `Null` when it was not JSON
    /// (see `raw`).
    pub body: Value,
    pub raw: String,
    /// The status this server answered.
    pub status: u16,
    pub at: Instant,
}

impl Message {
    /// The body's `text`, or "" when absent.
    pub fn text(&self) -> &str {
        self.body.get("text").and_then(Value::as_str).unwrap_or("")
    }

    /// Whether Slack accepted it (answered 200).
    pub fn delivered(&self) -> bool {
        self.status == 200
    }
}

/// Slack uses a `response_url` at most this many times.
pub const RESPONSE_URL_MAX_USES: u32 = 5;
const WEBHOOK_PATH: &str = "/services/T000/B000/XXXX";

#[derive(Debug, Clone)]
struct Failure {
    status: u16,
    body: String,
    /// The body never ends: after `body`, blanks keep coming.
    endless: bool,
}

#[derive(Debug, Default)]
struct ResponseUrlState {
    uses: u32,
    expired: bool,
}

#[derive(Debug)]
struct Inner {
    messages: Vec<Message>,
    /// Keyed by [`failure_key`].
    failures: HashMap<String, VecDeque<Failure>>,
    api: api::ApiState,
    response_urls: HashMap<String, ResponseUrlState>,
    retry_after_secs: u64,
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    changed: Arc<Notify>,
}

/// The Slack double; stops serving when dropped.
pub struct SlackServer {
    addr: SocketAddr,
    shared: Shared,
    next_id: AtomicU64,
    task: JoinHandle<()>,
}

impl SlackServer {
    /// Binds 127.0.0.1 on a free port and serves in the background.
    pub async fn start() -> Self {
        let shared = Shared {
            inner: Arc::new(Mutex::new(Inner {
                messages: Vec::new(),
                failures: HashMap::new(),
                api: api::ApiState::default(),
                response_urls: HashMap::new(),
                retry_after_secs: 1,
            })),
            changed: Arc::new(Notify::new()),
        };
        let app = Router::new()
            .route("/commands/{team}/{id}/{token}", post(response_url))
            .route("/services/{team}/{bot}/{token}", post(webhook))
            .route("/api/{method}", post(api::call))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        SlackServer {
            addr,
            shared,
            next_id: AtomicU64::new(1),
            task,
        }
    }

    /// `http://127.0.0.1:PORT/`: the runner's `CHATOPS_SLACK_RESPONSE_URL_PREFIX` in tests.
    pub fn base_url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// `http://127.0.0.1:PORT/api`: `SLACK_API_BASE_URL` in tests.
    pub fn api_base_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// A Web API client with the bot token this double accepts, as the services build one.
    pub fn api_client(&self) -> chatops_shared::slack_api::SlackApi {
        chatops_shared::slack_api::SlackApi::new(
            chatops_shared::secret::Secret::new(BOT_TOKEN),
            &self.api_base_url(),
        )
        .expect("Slack API client")
    }

    /// A fresh `response_url` on this server, usable 5 times.
    pub fn response_url(&self) -> String {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let path = format!("/commands/T000/{id}/{}", uuid::Uuid::new_v4().simple());
        self.lock()
            .response_urls
            .insert(path.clone(), ResponseUrlState::default());
        format!("http://{}{path}", self.addr)
    }

    /// The incoming webhook's URL.
    pub fn webhook_url(&self) -> String {
        format!("http://{}{WEBHOOK_PATH}", self.addr)
    }

    /// From now on, `url` answers 404 `expired_url` (as Slack does after 30 minutes).
    pub fn expire(&self, url: &str) {
        let path = self.path_of(url);
        self.lock().response_urls.entry(path).or_default().expired = true;
    }

    /// The next `n` posts to `kind` are answered `status` with `body` (text) instead.
    pub fn fail_next(&self, kind: PathKind, n: usize, status: u16, body: &str) {
        self.push_failures(failure_key(kind, ""), n, status, body);
    }

    /// The next `n` calls of Web API `method` are answered `status` with `body` (JSON, e.g.
    /// `{"ok":false,"error":"ratelimited"}` with 429) instead.
    pub fn fail_method_next(&self, method: &str, n: usize, status: u16, body: &str) {
        self.push_failures(failure_key(PathKind::Api, method), n, status, body);
    }

    fn push_failures(&self, key: String, n: usize, status: u16, body: &str) {
        let mut inner = self.lock();
        let queue = inner.failures.entry(key).or_default();
        for _ in 0..n {
            queue.push_back(Failure {
                status,
                body: body.to_owned(),
                endless: false,
            });
        }
    }

    /// Answers again: the failures queued with [`SlackServer::fail_next`] and
    /// [`SlackServer::fail_method_next`] and not yet given are dropped.
    pub fn recover(&self) {
        self.lock().failures.clear();
    }

    /// The next post to `kind` is answered 200 `ok` followed by a body that never ends.
    pub fn answer_endlessly_next(&self, kind: PathKind) {
        self.lock()
            .failures
            .entry(failure_key(kind, ""))
            .or_default()
            .push_back(Failure {
                status: 200,
                body: "ok".to_owned(),
                endless: true,
            });
    }

    /// The `Retry-After` seconds sent with a 429.
    pub fn set_retry_after(&self, secs: u64) {
        self.lock().retry_after_secs = secs;
    }

    /// Every post received so far.
    pub fn messages(&self) -> Vec<Message> {
        self.lock().messages.clone()
    }

    /// Posts of one kind received so far.
    pub fn messages_to(&self, kind: PathKind) -> Vec<Message> {
        self.messages()
            .into_iter()
            .filter(|m| m.kind == kind)
            .collect()
    }

    /// Waits until `done` holds for the posts received so far and returns them; panics with
    /// what was received after `timeout`.
    pub async fn wait_for(
        &self,
        done: impl Fn(&[Message]) -> bool,
        timeout: Duration,
    ) -> Vec<Message> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let inner = self.lock();
                if done(&inner.messages) {
                    return inner.messages.clone();
                }
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                panic!(
                    "Slack did not get the expected messages within {timeout:?}; got {:#?}",
                    self.messages()
                );
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn path_of(&self, url: &str) -> String {
        url::Url::parse(url)
            .map(|u| u.path().to_owned())
            .unwrap_or_else(|_| url.to_owned())
    }
}

impl Drop for SlackServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Where injected failures for a path wait: one queue per kind, and per method for the Web API.
fn failure_key(kind: PathKind, method: &str) -> String {
    match kind {
        PathKind::ResponseUrl => "response_url".into(),
        PathKind::Webhook => "webhook".into(),
        PathKind::Api => format!("api:{method}"),
    }
}

/// A JSON object with a string `text` or an array `blocks`: what Slack accepts as a message.
fn is_message(body: &Value) -> bool {
    body.get("text").is_some_and(Value::is_string)
        || body.get("blocks").is_some_and(Value::is_array)
}

fn json_answer(status: u16, body: Value) -> (u16, String, &'static str) {
    (status, body.to_string(), "application/json")
}

fn text_answer(status: u16, body: &str) -> (u16, String, &'static str) {
    (status, body.to_owned(), "text/plain; charset=utf-8")
}

impl Shared {
    /// Records the post, answers it (an injected failure first), and wakes waiters.
    fn handle(
        &self,
        kind: PathKind,
        path: String,
        raw: Bytes,
        answer: impl FnOnce(&mut Inner, &Value) -> (u16, String, &'static str),
    ) -> Response {
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let body: Value = serde_json::from_str(&raw)
            .ok()
            .or_else(|| (kind == PathKind::Api).then(|| api::form_as_json(&raw)))
            .unwrap_or(Value::Null);
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = failure_key(kind, &path);
        let injected = inner.failures.get_mut(&key).and_then(VecDeque::pop_front);
        let endless = injected.as_ref().is_some_and(|f| f.endless);
        let (status, text, content_type) = match injected {
            Some(f) if kind != PathKind::Webhook && f.body.starts_with('{') => json_answer(
                f.status,
                serde_json::from_str(&f.body).unwrap_or(Value::Null),
            ),
            Some(f) => text_answer(f.status, &f.body),
            None => answer(&mut inner, &body),
        };
        let retry_after = inner.retry_after_secs;
        inner.messages.push(Message {
            kind,
            path,
            body,
            raw,
            status,
            at: Instant::now(),
        });
        drop(inner);
        self.changed.notify_waiters();

        let body = if endless {
            axum::body::Body::from_stream(endless_body(text))
        } else {
            axum::body::Body::from(text)
        };
        let mut response = (StatusCode::from_u16(status).unwrap(), body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        if status == 429 {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        response
    }
}

/// `first`, then 64 KiB of blanks every 10 ms, for ever.
fn endless_body(
    first: String,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    let first = futures_util::stream::once(async move { Ok(first.into_bytes()) });
    let blanks = futures_util::stream::unfold((), |()| async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        Some((Ok(vec![b' '; 64 * 1024]), ()))
    });
    futures_util::StreamExt::chain(first, blanks)
}

async fn response_url(
    State(shared): State<Shared>,
    Path((team, id, token)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let path = format!("/commands/{team}/{id}/{token}");
    shared.handle(PathKind::ResponseUrl, path.clone(), body, |inner, body| {
        let Some(url) = inner.response_urls.get_mut(&path) else {
            return json_answer(404, json!({"ok": false, "error": "expired_url"}));
        };
        if url.expired {
            return json_answer(404, json!({"ok": false, "error": "expired_url"}));
        }
        if url.uses >= RESPONSE_URL_MAX_USES {
            return json_answer(404, json!({"ok": false, "error": "used_url"}));
        }
        if !is_message(body) {
            return json_answer(400, json!({"ok": false, "error": "invalid_payload"}));
        }
        url.uses += 1;
        json_answer(200, json!({"ok": true}))
    })
}

async fn webhook(
    State(shared): State<Shared>,
    Path((team, bot, token)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let path = format!("/services/{team}/{bot}/{token}");
    let known = path == WEBHOOK_PATH;
    shared.handle(PathKind::Webhook, path, body, |_, body| {
        if !known {
            text_answer(404, "no_service")
        } else if !is_message(body) {
            text_answer(400, "invalid_payload")
        } else {
            text_answer(200, "ok")
        }
    })
}
