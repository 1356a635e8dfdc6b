//! `views.open`: needs a `trigger_id` minted by [`SlackServer::trigger_id`], used once and
//! within 3 s (`invalid_trigger_id` / `expired_trigger_id` / `exchanged_trigger_id` otherwise),
//! and a modal view within Slack's limits (`invalid_arguments` otherwise): a title of at most
//! 24 characters, at most 100 blocks, `private_metadata` of at most 3,000 characters, `block_id`s
//! of at most 255, 250 KB in all.

use super::super::SlackServer;
use super::arg;
use serde_json::Value;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long Slack accepts a trigger.
const TRIGGER_LIFETIME: Duration = Duration::from_secs(3);

#[derive(Debug, Default)]
pub(super) struct ViewsState {
    /// Minted triggers: when, and whether used.
    triggers: HashMap<String, (Instant, bool)>,
}

impl ViewsState {
    pub(super) fn open(&mut self, body: &Value) -> Result<Value, &'static str> {
        let trigger = arg(body, "trigger_id").ok_or("invalid_arguments")?;
        let (minted, used) = self.triggers.get_mut(trigger).ok_or("invalid_trigger_id")?;
        if *used {
            return Err("exchanged_trigger_id");
        }
        if minted.elapsed() > TRIGGER_LIFETIME {
            return Err("expired_trigger_id");
        }
        let view = body.get("view").ok_or("invalid_arguments")?;
        let blocks = view.get("blocks").and_then(Value::as_array);
        let title = view
            .get("title")
            .and_then(|t| t.get("text"))
            .and_then(Value::as_str);
        let metadata = view
            .get("private_metadata")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let long_block_id = blocks.is_some_and(|b| {
            b.iter().any(|block| {
                block
                    .get("block_id")
                    .and_then(Value::as_str)
                    .is_some_and(|id| id.chars().count() > 255)
            })
        });
        if view.get("type").and_then(Value::as_str) != Some("modal")
            || title.is_none_or(|t| t.is_empty() || t.chars().count() > 24)
            || blocks.is_none_or(|b| b.len() > 100)
            || metadata.chars().count() > 3000
            || long_block_id
            || view.to_string().len() > 250_000
        {
            return Err("invalid_arguments");
        }
        *used = true;
        Ok(Value::Object(serde_json::Map::from_iter([(
            "view".to_owned(),
            view.clone(),
        )])))
    }
}

impl SlackServer {
    /// A fresh `trigger_id`, as Slack sends with a slash command or an interaction.
    pub fn trigger_id(&self) -> String {
        let id = format!(
            "{}.{}",
            self.next_id
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            uuid::Uuid::new_v4().simple()
        );
        self.lock()
            .api
            .views
            .triggers
            .insert(id.clone(), (Instant::now(), false));
        id
    }
}
