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
    /// Claims a job before it is queued: true the first time within the window, false for a
    /// replay. One step, so that two copies of a request arriving together cannot both win.
    pub fn claim(&self, job_id: Uuid) -> bool {
        let now = Instant::now();
        let mut seen = self.lock();
        if seen
            .get(&job_id)
            .is_some_and(|at| now.duration_since(*at) < REMEMBER_FOR)
        {
            return false;
        }
        if seen.len() >= MAX_ENTRIES {
            seen.retain(|_, at| now.duration_since(*at) < REMEMBER_FOR);
        }
        // Past the bound every request is queued: the runner's executors still make one job.
        if seen.len() < MAX_ENTRIES {
            seen.insert(job_id, now);
        }
        true
    }

    /// Gives a claim back when the job could not be queued, so that Slack's retry can.
    pub fn release(&self, job_id: &Uuid) {
        self.lock().remove(job_id);
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
    fn a_job_is_claimed_once_until_released() {
        let c = ReplayCache::default();
        let id = Uuid::from_u128(1);
        assert!(c.claim(id));
        assert!(!c.claim(id));
        assert!(c.claim(Uuid::from_u128(2)));
        c.release(&id);
        assert!(c.claim(id));
    }
}
