//! Spacing calls: per key, each call starts at least the interval after the previous call under
//! that key *actually* got its turn (waiters queue on a per-key lock, so a starved process that
//! wakes late pushes the next call back instead of letting late calls go out together, a burst
//! Slack answers with 429s); and per method, the time until which Slack asked everybody to wait
//! (429 `Retry-After`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// Keys unused for this long are forgotten (their next call may go at once anyway).
const FORGET_AFTER: Duration = Duration::from_secs(600);

/// When a key's last call got its turn (`None`: never).
type Last = Arc<tokio::sync::Mutex<Option<Instant>>>;

#[derive(Debug, Default)]
pub(super) struct Pacer {
    /// Per key: its turn lock and when its last call went.
    keys: Mutex<HashMap<String, Last>>,
    /// Per method: no call before this instant.
    held: Mutex<HashMap<String, Instant>>,
}

impl Pacer {
    /// Waits for this key's turn: `interval` after the previous call under it went, and after
    /// the end of a 429's hold on `method` when that comes before `deadline`. The hold is waited
    /// out in turn, so the calls that queued during it go one by one after it, not all at its
    /// end (which Slack answers with another 429). False when the turn would come after
    /// `deadline`: the caller does not call, and the turn stays for the next caller.
    pub(super) async fn wait_turn(
        &self,
        key: &str,
        interval: Duration,
        method: &str,
        deadline: Instant,
    ) -> bool {
        let slot = {
            let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
            if keys.len() > 1024 {
                let now = Instant::now();
                keys.retain(|_, last| {
                    Arc::strong_count(last) > 1
                        || last
                            .try_lock()
                            .is_ok_and(|at| at.is_none_or(|at| at + FORGET_AFTER > now))
                });
            }
            keys.entry(key.to_owned()).or_default().clone()
        };
        let Ok(mut last) = tokio::time::timeout_at(deadline, slot.lock()).await else {
            return false;
        };
        if let Some(at) = *last {
            if at + interval > deadline {
                return false;
            }
            tokio::time::sleep_until(at + interval).await;
        }
        if let Some(until) = self.held_until(method).filter(|until| *until < deadline) {
            tokio::time::sleep_until(until).await;
        }
        *last = Some(Instant::now());
        true
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
