//! Spacing calls: per key, at most one call per interval (slots are reserved in order, so
//! concurrent callers queue up instead of bursting), and per method, the time until which Slack
//! asked everybody to wait (429 `Retry-After`).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// Keys unused for this long are forgotten (their next call may go at once anyway).
const FORGET_AFTER: Duration = Duration::from_secs(600);

#[derive(Debug, Default)]
pub(super) struct Pacer {
    /// Per key: when the next call may go.
    next: Mutex<HashMap<String, Instant>>,
    /// Per method: no call before this instant.
    held: Mutex<HashMap<String, Instant>>,
}

impl Pacer {
    /// Waits for this key's next slot and reserves the one after it.
    pub(super) async fn wait_turn(&self, key: &str, interval: Duration) {
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            if next.len() > 1024 {
                next.retain(|_, at| *at + FORGET_AFTER > now);
            }
            let slot = next.get(key).copied().filter(|at| *at > now).unwrap_or(now);
            next.insert(key.to_string(), slot + interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }

    /// Slack said to wait with `method` until `until`.
    pub(super) fn hold(&self, method: &str, until: Instant) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = held.entry(method.to_string()).or_insert(until);
        *entry = (*entry).max(until);
    }

    /// Until when `method` must wait, if it must.
    pub(super) fn held_until(&self, method: &str) -> Option<Instant> {
        let held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        held.get(method).copied().filter(|at| *at > Instant::now())
    }
}
