//! `chat.postMessage`, `chat.update`, `chat.postEphemeral`: messages kept per channel with a
//! `ts`, so a test sees what a channel shows (the last version of each message, its thread).
//! The bot posts only in channels it was added to ([`SlackServer::join`]): elsewhere
//! `not_in_channel`; unknown channels (see [`SlackServer::remove_channel`]) `channel_not_found`;
//! an update of a message that is not there `message_not_found`.

use super::super::SlackServer;
use super::arg;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};

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
}

impl ChatState {
    fn channel(&self, body: &Value) -> Result<String, &'static str> {
        let channel = arg(body, "channel").ok_or("channel_not_found")?;
        if self.gone.contains(channel) {
            return Err("channel_not_found");
        }
        Ok(channel.to_owned())
    }

    pub(super) fn post_message(&mut self, body: &Value) -> Result<Value, &'static str> {
        let channel = self.channel(body)?;
        if !self.joined.contains(&channel) {
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

/// A message needs `text` or `blocks`.
fn check_message(body: &Value) -> Result<(), &'static str> {
    if super::super::is_message(body) {
        Ok(())
    } else {
        Err("no_text")
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
