//! Remembers the jobs this process queued in the last few minutes, so that a replayed request
//! (same signature, inside Slack's 5-minute window) gets the same acknowledgement without a
//! second message on the queue.
//!
//! In memory and per process: with several ingress replicas a replay that lands on another
//! replica is queued again under the same `job_id`, and the runner's executors make that one
//! job (Azure Automation refuses a second job of the same name).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Longer than the signature window, so every replay that verifies is still remembered.
const REMEMBER_FOR: Duration = Duration::from_secs(6 * 60);
/// A bound on memory if something floods us with valid requests.
const MAX_ENTRIES: usize = 100_000;

#[derive(Default)]
pub struct ReplayCache {
    seen: Mutex<HashMap<Uuid, Instant>>,
}

impl ReplayCache {
    /// Whether this job was queued by this process within the window.
    pub fn contains(&self, job_id: &Uuid) -> bool {
        let now = Instant::now();
        self.lock()
            .get(job_id)
            .is_some_and(|at| now.duration_since(*at) < REMEMBER_FOR)
    }

    /// Records a queued job, forgetting old entries.
    pub fn insert(&self, job_id: Uuid) {
        let now = Instant::now();
        let mut seen = self.lock();
        if seen.len() >= MAX_ENTRIES {
            seen.retain(|_, at| now.duration_since(*at) < REMEMBER_FOR);
        }
        if seen.len() < MAX_ENTRIES {
            seen.insert(job_id, now);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Instant>> {
        // A panic while holding this lock leaves a valid map: keep using it.
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_what_was_inserted() {
        let c = ReplayCache::default();
        let id = Uuid::from_u128(1);
        assert!(!c.contains(&id));
        c.insert(id);
        assert!(c.contains(&id));
        assert!(!c.contains(&Uuid::from_u128(2)));
    }
}
