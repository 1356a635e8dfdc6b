//! The Web API part of the Slack double: `POST /api/{method}` with the bot token.
//!
//! Every answer is HTTP 200 with `{"ok": true, …}` or `{"ok": false, "error": "…"}`, as Slack
//! answers (`/work/shared/reference/slack.md`); rate limits are 429 with `Retry-After`. The
//! methods live in one file each: `chat` (`chat.postMessage`, `chat.update`,
//! `chat.postEphemeral`), `views` (`views.open`), `usergroups` (`usergroups.users.list`).

mod chat;
mod usergroups;
mod views;

pub use chat::{ChatMessage, MAX_BLOCKS, MAX_MESSAGE_CHARS, MAX_SECTION_CHARS, Rate};

use super::{Inner, PathKind, Shared, json_answer};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};

/// The bot token this double accepts (`SLACK_BOT_TOKEN` in tests).
pub const BOT_TOKEN: &str = "xoxb-test-bot-token";

/// What the Web API methods remember between calls.
#[derive(Debug, Default)]
pub(super) struct ApiState {
    chat: chat::ChatState,
    views: views::ViewsState,
    usergroups: usergroups::UsergroupsState,
    /// How long calls of a method wait before they are answered ([`SlackServer::delay_method`]).
    delays: std::collections::HashMap<String, std::time::Duration>,
}

impl super::SlackServer {
    /// From now on, calls of Web API `method` are answered only after `delay` (a slow Slack).
    pub fn delay_method(&self, method: &str, delay: std::time::Duration) {
        self.lock().api.delays.insert(method.to_owned(), delay);
    }
}

pub(super) async fn call(
    State(shared): State<Shared>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let delay = shared
        .inner
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .api
        .delays
        .get(&method)
        .copied();
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    shared.handle(PathKind::Api, method.clone(), body, move |inner, body| {
        match auth.as_deref() {
            None => return ok_false("not_authed"),
            Some(a) if a != format!("Bearer {BOT_TOKEN}") => return ok_false("invalid_auth"),
            Some(_) => {}
        }
        answer(inner, &method, body)
    })
}

fn answer(inner: &mut Inner, method: &str, body: &Value) -> (u16, String, &'static str) {
    let state = &mut inner.api;
    if state.chat.over_limit(method, body) {
        return json_answer(429, json!({"ok": false, "error": "ratelimited"}));
    }
    let result = match method {
        "chat.postMessage" => state.chat.post_message(body),
        "chat.update" => state.chat.update(body),
        "chat.postEphemeral" => state.chat.post_ephemeral(body),
        "views.open" => state.views.open(body),
        "usergroups.users.list" => state.usergroups.users_list(body),
        _ => Err("unknown_method"),
    };
    match result {
        Ok(Value::Object(mut fields)) => {
            fields.insert("ok".into(), Value::Bool(true));
            json_answer(200, Value::Object(fields))
        }
        Ok(_) => json_answer(200, json!({"ok": true})),
        Err(code) => ok_false(code),
    }
}

fn ok_false(error: &str) -> (u16, String, &'static str) {
    json_answer(200, json!({"ok": false, "error": error}))
}

/// A form body (`a=1&b=2`) as a JSON object of strings.
pub(super) fn form_as_json(raw: &str) -> Value {
    Value::Object(
        url::form_urlencoded::parse(raw.as_bytes())
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect(),
    )
}

/// A string field of a call's arguments.
fn arg<'a>(body: &'a Value, name: &str) -> Option<&'a str> {
    body.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}
