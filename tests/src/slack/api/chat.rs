//! `chat.postMessage`, `chat.update`, `chat.postEphemeral`: messages kept per channel with a
//! `ts`, so a test sees what a channel shows (the last version of each message, its thread).
//! The bot posts only in channels it was added to ([`SlackServer::join`]): elsewhere
//! `not_in_channel`; a post to a user ID goes to the app's DM with that user (channel `D` +
//! the user ID), where the app may always post; unknown channels (see [`SlackServer::remove_channel`]) `channel_not_found`;
//! an update of a message that is not there `message_not_found`.
//!
//! Slack's limits are enforced (`/work/shared/reference/slack.md`, bolt-js #2509/#2867): more
//! than [`MAX_BLOCKS`] blocks or a section text over [`MAX_SECTION_CHARS`] is `invalid_blocks`;
//! more than [`MAX_MESSAGE_CHARS`] characters in all (`text` and every text in the blocks) is
//! `msg_too_long`. Posts are limited per channel and updates per workspace ([`Rate`]): over the
//! limit the call is answered 429 with `Retry-After`.

use super::super::SlackServer;
use super::arg;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

/// At most this many blocks in a message.
pub const MAX_BLOCKS: usize = 50;
/// At most this many characters in a section block's text.
pub const MAX_SECTION_CHARS: usize = 3000;
/// At most this many characters in a message in all: Slack refuses longer messages well below
/// its documented 40,000 (bolt-js #2509, #2867).
pub const MAX_MESSAGE_CHARS: usize = 12_000;

/// A rate limit: a burst of `burst` calls, then one per `interval` (a token bucket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub interval: Duration,
    pub burst: u32,
}

impl Rate {
    /// About one post per second per channel, with short bursts.
    pub const POSTS: Rate = Rate {
        interval: Duration::from_secs(1),
        burst: 5,
    };
    /// `chat.update` is Tier 3: about 50 per minute per workspace.
    pub const UPDATES: Rate = Rate {
        interval: Duration::from_millis(1200),
        burst: 10,
    };
}

/// One key's bucket: tokens left, as of `at`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// One message as the channel shows it now.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    pub channel: String,
    pub ts: String,
    /// The `ts` of the message this one replies to.
    pub thread_ts: Option<String>,
    /// The message's latest body (`text`, `blocks`).
    pub body: Value,
    /// How many times it was updated.
    pub updates: u32,
}

#[derive(Debug, Default)]
pub(super) struct ChatState {
    /// Channels the bot is in.
    joined: HashSet<String>,
    /// Channels that no longer exist.
    gone: HashSet<String>,
    /// By `ts` (unique across channels here).
    messages: BTreeMap<String, ChatMessage>,
    /// Ephemeral messages: (channel, user, body).
    ephemeral: Vec<(String, String, Value)>,
    next_ts: u64,
    /// `None`: the default ([`Rate::POSTS`], [`Rate::UPDATES`]).
    post_rate: Option<Rate>,
    update_rate: Option<Rate>,
    /// By `post:<channel>` or `update`.
    buckets: HashMap<String, Bucket>,
    /// Calls answered 429 so far.
    pub(super) limited: u32,
}

impl ChatState {
    /// Whether this call is over its rate limit (it is then answered 429); takes its token
    /// when it is not.
    pub(super) fn over_limit(&mut self, method: &str, body: &Value) -> bool {
        let (key, rate) = match method {
            "chat.postMessage" => (
                format!("post:{}", arg(body, "channel").unwrap_or("")),
                self.post_rate.unwrap_or(Rate::POSTS),
            ),
            "chat.update" => (
                "update".to_owned(),
                self.update_rate.unwrap_or(Rate::UPDATES),
            ),
            _ => return false,
        };
        let now = Instant::now();
        let burst = f64::from(rate.burst.max(1));
        let bucket = self.buckets.entry(key).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() / rate.interval.as_secs_f64();
        bucket.tokens = (bucket.tokens + refill).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            false
        } else {
            self.limited += 1;
            true
        }
    }

    fn channel(&self, body: &Value) -> Result<String, &'static str> {
        let channel = arg(body, "channel").ok_or("channel_not_found")?;
        if self.gone.contains(channel) {
            return Err("channel_not_found");
        }
        Ok(channel.to_owned())
    }

    pub(super) fn post_message(&mut self, body: &Value) -> Result<Value, &'static str> {
        let mut channel = self.channel(body)?;
        if channel.starts_with(['U', 'W']) {
            // A user ID: the app's DM with that user, whose ID is `D` + the user ID here.
            channel = format!("D{channel}");
        } else if !channel.starts_with('D') && !self.joined.contains(&channel) {
            return Err("not_in_channel");
        }
        check_message(body)?;
        let thread_ts = arg(body, "thread_ts").map(str::to_owned);
        if let Some(parent) = &thread_ts
            && !self.messages.contains_key(parent)
        {
            return Err("thread_not_found");
        }
        self.next_ts += 1;
        let ts = format!("1700000000.{:06}", self.next_ts);
        self.messages.insert(
            ts.clone(),
            ChatMessage {
                channel: channel.clone(),
                ts: ts.clone(),
                thread_ts,
                body: message_of(body),
                updates: 0,
            },
        );
        Ok(json!({ "channel": channel, "ts": ts }))
    }

    pub(super) fn update(&mut self, body: &Value) -> Result<Value, &'static str> {
        let channel = self.channel(body)?;
        let ts = arg(body, "ts").ok_or("message_not_found")?;
        check_message(body)?;
        let message = self
            .messages
            .get_mut(ts)
            .filter(|m| m.channel == channel)
            .ok_or("message_not_found")?;
        message.body = message_of(body);
        message.updates += 1;
        Ok(json!({ "channel": channel, "ts": ts }))
    }

    pub(super) fn post_ephemeral(&mut self, body: &Value) -> Result<Value, &'static str> {
        let channel = self.channel(body)?;
        let user = arg(body, "user").ok_or("user_not_found")?;
        if !self.joined.contains(&channel) {
            return Err("not_in_channel");
        }
        check_message(body)?;
        self.ephemeral
            .push((channel, user.to_owned(), message_of(body)));
        Ok(json!({ "message_ts": format!("1700000000.{:06}", self.next_ts) }))
    }
}

/// A message needs `text` or `blocks`, within Slack's limits (see the module docs).
fn check_message(body: &Value) -> Result<(), &'static str> {
    if !super::super::is_message(body) {
        return Err("no_text");
    }
    let blocks = body.get("blocks").and_then(Value::as_array);
    if let Some(blocks) = blocks {
        if blocks.len() > MAX_BLOCKS {
            return Err("invalid_blocks");
        }
        for block in blocks {
            let section_text = block
                .get("text")
                .and_then(|t| t.get("text"))
                .and_then(Value::as_str);
            if block.get("type").and_then(Value::as_str) == Some("section")
                && section_text.is_some_and(|t| t.chars().count() > MAX_SECTION_CHARS)
            {
                return Err("invalid_blocks");
            }
        }
    }
    let mut total = 0;
    if let Some(text) = body.get("text").and_then(Value::as_str) {
        total += text.chars().count();
    }
    for block in blocks.into_iter().flatten() {
        total += texts_in(block);
    }
    if total > MAX_MESSAGE_CHARS {
        return Err("msg_too_long");
    }
    Ok(())
}

/// The characters of every `text` string inside a block.
fn texts_in(value: &Value) -> usize {
    match value {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) if k == "text" => s.chars().count(),
                other => texts_in(other),
            })
            .sum(),
        Value::Array(items) => items.iter().map(texts_in).sum(),
        _ => 0,
    }
}

/// The parts of a call that the channel shows.
fn message_of(body: &Value) -> Value {
    let mut shown = serde_json::Map::new();
    for key in ["text", "blocks"] {
        if let Some(v) = body.get(key) {
            shown.insert(key.to_owned(), v.clone());
        }
    }
    Value::Object(shown)
}

impl SlackServer {
    /// The bot is a member of `channel` from now on.
    pub fn join(&self, channel: &str) {
        let mut inner = self.lock();
        inner.api.chat.joined.insert(channel.to_owned());
    }

    /// The bot is removed from `channel` (later posts: `not_in_channel`).
    pub fn leave(&self, channel: &str) {
        self.lock().api.chat.joined.remove(channel);
    }

    /// `channel` is deleted (later calls: `channel_not_found`).
    pub fn remove_channel(&self, channel: &str) {
        self.lock().api.chat.gone.insert(channel.to_owned());
    }

    /// Deletes a message (later updates: `message_not_found`).
    pub fn delete_message(&self, ts: &str) {
        self.lock().api.chat.messages.remove(ts);
    }

    /// Posts in one channel are limited to `rate` from now on (default [`Rate::POSTS`]).
    pub fn set_post_rate(&self, rate: Rate) {
        self.lock().api.chat.post_rate = Some(rate);
    }

    /// Updates in the workspace are limited to `rate` from now on (default [`Rate::UPDATES`]).
    pub fn set_update_rate(&self, rate: Rate) {
        self.lock().api.chat.update_rate = Some(rate);
    }

    /// How many `chat.*` calls were answered 429 for their rate limit so far.
    pub fn rate_limited_calls(&self) -> u32 {
        self.lock().api.chat.limited
    }

    /// The messages `channel` shows now, oldest first (thread replies included).
    pub fn channel_messages(&self, channel: &str) -> Vec<ChatMessage> {
        self.lock()
            .api
            .chat
            .messages
            .values()
            .filter(|m| m.channel == channel)
            .cloned()
            .collect()
    }

    /// Ephemeral messages shown so far: (channel, user, body).
    pub fn ephemeral_messages(&self) -> Vec<(String, String, Value)> {
        self.lock().api.chat.ephemeral.clone()
    }

    /// The Web API calls of `method` received so far.
    pub fn api_calls(&self, method: &str) -> Vec<super::super::Message> {
        self.messages_to(super::super::PathKind::Api)
            .into_iter()
            .filter(|m| m.path == method)
            .collect()
    }
}
