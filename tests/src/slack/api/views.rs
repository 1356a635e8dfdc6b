//! `views.open`: needs a `trigger_id` minted by [`SlackServer::trigger_id`], used once and
//! within 3 s (`invalid_trigger_id` / `expired_trigger_id` / `exchanged_trigger_id` otherwise),
//! and a modal view of at most 100 blocks with a title (`invalid_arguments` otherwise).

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
        if view.get("type").and_then(Value::as_str) != Some("modal")
            || view.get("title").is_none()
            || blocks.is_none_or(|b| b.len() > 100)
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
