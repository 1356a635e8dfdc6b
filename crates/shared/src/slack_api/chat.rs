//! `chat.postMessage`, `chat.update` and `chat.postEphemeral` (scope `chat:write`).

use super::{Body, Pace, SlackApi, SlackApiError};
use serde_json::Value;
use tokio::time::Instant;

/// The methods, as [`SlackApi::pace`] names them.
pub const POST_MESSAGE: &str = "chat.postMessage";
pub const UPDATE_MESSAGE: &str = "chat.update";

/// Where a posted message is: what `chat.update` and replies in its thread need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    pub channel: String,
    pub ts: String,
}

impl SlackApi {
    /// Posts `message` (a JSON object with `text` and optionally `blocks`, `thread_ts`, …) to
    /// `channel`.
    /// `pace`: the call's place in the pacing ([`SlackApi::pace`]), taken again when Slack
    /// answers 429, so that the calls queued meanwhile keep their turns.
    pub async fn post_message(
        &self,
        channel: &str,
        message: &Value,
        pace: Option<Pace<'_>>,
        deadline: Instant,
    ) -> Result<Posted, SlackApiError> {
        let body = with_fields(message, &[("channel", channel)]);
        let answer = self
            .send(POST_MESSAGE, Body::Json(&body), pace, deadline)
            .await?;
        posted(POST_MESSAGE, &answer, channel)
    }

    /// Replaces the message at `channel`/`ts` with `message`; `pace` as for
    /// [`SlackApi::post_message`].
    pub async fn update_message(
        &self,
        at: &Posted,
        message: &Value,
        pace: Option<Pace<'_>>,
        deadline: Instant,
    ) -> Result<(), SlackApiError> {
        let body = with_fields(message, &[("channel", &at.channel), ("ts", &at.ts)]);
        self.send(UPDATE_MESSAGE, Body::Json(&body), pace, deadline)
            .await
            .map(drop)
    }

    /// Shows `message` to `user` only, in `channel`.
    pub async fn post_ephemeral(
        &self,
        channel: &str,
        user: &str,
        message: &Value,
        deadline: Instant,
    ) -> Result<(), SlackApiError> {
        let body = with_fields(message, &[("channel", channel), ("user", user)]);
        self.call("chat.postEphemeral", &body, deadline)
            .await
            .map(drop)
    }
}

/// `message` with string fields set (a message that is not an object becomes `{"text": …}`).
fn with_fields(message: &Value, fields: &[(&str, &str)]) -> Value {
    let mut body = match message {
        Value::Object(map) => map.clone(),
        other => {
            let mut map = serde_json::Map::new();
            map.insert("text".into(), Value::String(other.to_string()));
            map
        }
    };
    for (k, v) in fields {
        body.insert((*k).to_string(), Value::String((*v).to_string()));
    }
    Value::Object(body)
}

fn posted(method: &str, answer: &Value, channel: &str) -> Result<Posted, SlackApiError> {
    let ts = answer
        .get("ts")
        .and_then(Value::as_str)
        .ok_or_else(|| SlackApiError::BadAnswer(method.to_string()))?;
    Ok(Posted {
        channel: answer
            .get("channel")
            .and_then(Value::as_str)
            .unwrap_or(channel)
            .to_string(),
        ts: ts.to_string(),
    })
}
