//! Job ids this process has seen recently (a bounded, in-memory set), claimed one at a time.
//!
//! The ingress claims a job id before queueing it, so that a replayed request is answered
//! without a second message; the runner claims a local job before starting it, so that a second
//! message for the same job is dropped. Per process by design: what must hold across processes
//! is enforced elsewhere (Automation job names, the start mark on the queue message).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Claimed ids, each remembered for `remember_for`, at most `max` at once.
pub struct RecentIds {
    remember_for: Duration,
    max: usize,
    seen: Mutex<HashMap<Uuid, Instant>>,
}

impl RecentIds {
    pub fn new(remember_for: Duration, max: usize) -> Self {
        RecentIds {
            remember_for,
            max,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// True the first time within `remember_for`, false while the id is claimed. One step, so
    /// that two callers racing for the same id cannot both win.
    pub fn claim(&self, id: Uuid) -> bool {
        let now = Instant::now();
        let mut seen = self.lock();
        if seen
            .get(&id)
            .is_some_and(|at| now.duration_since(*at) < self.remember_for)
        {
            return false;
        }
        if seen.len() >= self.max {
            seen.retain(|_, at| now.duration_since(*at) < self.remember_for);
        }
        // Past the bound nothing more is remembered: callers have a second line of defence.
        if seen.len() < self.max {
            seen.insert(id, now);
        }
        true
    }

    /// Gives a claim back (the work it stood for did not happen).
    pub fn release(&self, id: &Uuid) {
        self.lock().remove(id);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, Instant>> {
        // A panic while holding this lock leaves a valid map: keep using it.
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_claimed_once_until_released() {
        let c = RecentIds::new(Duration::from_secs(60), 10);
        let id = Uuid::from_u128(1);
        assert!(c.claim(id));
        assert!(!c.claim(id));
        assert!(c.claim(Uuid::from_u128(2)));
        c.release(&id);
        assert!(c.claim(id));
    }

    #[test]
    fn claims_expire() {
        let c = RecentIds::new(Duration::ZERO, 10);
        let id = Uuid::from_u128(1);
        assert!(c.claim(id));
        assert!(c.claim(id), "remembered for no time at all");
    }

    #[test]
    fn memory_is_bounded() {
        let c = RecentIds::new(Duration::from_secs(60), 2);
        for n in 0..5 {
            assert!(c.claim(Uuid::from_u128(n)));
        }
        assert_eq!(c.lock().len(), 2);
        assert!(
            !c.claim(Uuid::from_u128(0)),
            "what was remembered still counts"
        );
    }
}
