//! Job ids this process has seen recently (a bounded, in-memory set), claimed one at a time.
//!
//! The ingress claims a job id before queueing it, so that a replayed request is answered
//! without a second message. Per process by design: what must hold across processes is enforced
//! elsewhere (the job records, Automation job names).

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Claimed ids, each remembered for `remember_for`, at most `max` claims at once.
///
/// Every claim costs the same whatever is remembered: claims are kept in the order they were
/// made, so the expired ones are forgotten from the front. (Scanning the whole set for expired
/// claims once it was full made every command scan `max` entries under sustained load, while
/// none had expired yet.)
pub struct RecentIds {
    remember_for: Duration,
    max: usize,
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    /// Each remembered id and when it was claimed.
    at: HashMap<Uuid, Instant>,
    /// The claims, oldest first. A released id leaves its claim here until it expires or the
    /// claims are compacted, so this is what `max` bounds.
    order: VecDeque<(Instant, Uuid)>,
}

impl Seen {
    /// Forgets the claims made at or before `expired_before`.
    fn forget_until(&mut self, expired_before: Instant) {
        while let Some(&(at, id)) = self.order.front() {
            if at > expired_before {
                break;
            }
            self.order.pop_front();
            // Only when this claim is the id's latest: released and claimed again since,
            // the id is remembered from its later claim.
            if self.at.get(&id) == Some(&at) {
                self.at.remove(&id);
            }
        }
    }
}

impl RecentIds {
    pub fn new(remember_for: Duration, max: usize) -> Self {
        RecentIds {
            remember_for,
            max,
            seen: Mutex::new(Seen::default()),
        }
    }

    /// True the first time within `remember_for`, false while the id is claimed. One step, so
    /// that two callers racing for the same id cannot both win.
    pub fn claim(&self, id: Uuid) -> bool {
        self.claim_at(id, Instant::now())
    }

    /// [`Self::claim`] at `now`. Two claims racing for the lock may be queued a moment out of
    /// order; the one queued second is then forgotten up to that moment late, never early.
    fn claim_at(&self, id: Uuid, now: Instant) -> bool {
        let mut seen = self.lock();
        if let Some(expired_before) = now.checked_sub(self.remember_for) {
            seen.forget_until(expired_before);
        }
        if seen
            .at
            .get(&id)
            .is_some_and(|at| now.duration_since(*at) < self.remember_for)
        {
            return false;
        }
        // Full, but at least half of it released claims (commands whose queueing failed):
        // drop those. Half the bound released between two compactions keeps it O(1) a claim.
        if seen.order.len() >= self.max && seen.at.len() <= self.max / 2 {
            let Seen { at, order } = &mut *seen;
            order.retain(|(claimed, id)| at.get(id) == Some(claimed));
        }
        // Past the bound nothing more is remembered: callers have a second line of defence.
        if seen.order.len() < self.max {
            seen.at.insert(id, now);
            seen.order.push_back((now, id));
        }
        true
    }

    /// Gives a claim back (the work it stood for did not happen).
    pub fn release(&self, id: &Uuid) {
        self.lock().at.remove(id);
    }

    fn lock(&self) -> MutexGuard<'_, Seen> {
        // A panic while holding this lock leaves a valid state: keep using it.
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
        assert_eq!(c.lock().at.len(), 2);
        assert!(
            !c.claim(Uuid::from_u128(0)),
            "what was remembered still counts"
        );
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn expired_claims_are_forgotten_oldest_first() {
        let c = RecentIds::new(MINUTE, 10);
        let t0 = Instant::now();
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        assert!(c.claim_at(a, t0));
        assert!(c.claim_at(b, t0 + Duration::from_secs(30)));
        assert!(!c.claim_at(a, t0 + Duration::from_secs(59)));
        // a expired: forgotten, and claimable again; b is still remembered.
        assert!(c.claim_at(Uuid::from_u128(3), t0 + Duration::from_secs(61)));
        assert!(!c.lock().at.contains_key(&a));
        assert!(!c.claim_at(b, t0 + Duration::from_secs(61)));
        assert!(c.claim_at(a, t0 + Duration::from_secs(62)));
        assert_eq!(c.lock().order.len(), 3, "b, 3 and a's second claim");
    }

    #[test]
    fn an_id_claimed_again_after_a_release_is_remembered_from_its_later_claim() {
        let c = RecentIds::new(MINUTE, 10);
        let t0 = Instant::now();
        let id = Uuid::from_u128(1);
        assert!(c.claim_at(id, t0));
        c.release(&id);
        assert!(c.claim_at(id, t0 + Duration::from_secs(30)));
        // Its first claim expires; its second still holds.
        assert!(!c.claim_at(id, t0 + Duration::from_secs(61)));
        assert!(c.claim_at(id, t0 + Duration::from_secs(91)));
    }

    #[test]
    fn a_full_memory_makes_room_as_its_oldest_claims_expire() {
        let c = RecentIds::new(MINUTE, 2);
        let t0 = Instant::now();
        let (a, b, new) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        assert!(c.claim_at(a, t0));
        assert!(c.claim_at(b, t0 + Duration::from_secs(10)));
        // Full: answered, not remembered.
        assert!(c.claim_at(new, t0 + Duration::from_secs(20)));
        assert!(c.claim_at(new, t0 + Duration::from_secs(21)));
        // a's claim expired: room for one.
        assert!(c.claim_at(new, t0 + Duration::from_secs(61)));
        assert!(!c.claim_at(new, t0 + Duration::from_secs(62)));
        assert!(!c.claim_at(b, t0 + Duration::from_secs(62)));
    }

    #[test]
    fn released_claims_give_their_room_back_once_they_are_half_the_memory() {
        let c = RecentIds::new(MINUTE, 4);
        let t0 = Instant::now();
        for n in 0..4 {
            assert!(c.claim_at(Uuid::from_u128(n), t0));
        }
        c.release(&Uuid::from_u128(0));
        // Full, three of four still claimed: no room.
        let id = Uuid::from_u128(9);
        assert!(c.claim_at(id, t0 + Duration::from_secs(1)));
        assert!(
            c.claim_at(id, t0 + Duration::from_secs(2)),
            "not remembered"
        );
        // Two of four released: compacted, room for two.
        c.release(&Uuid::from_u128(1));
        assert!(c.claim_at(id, t0 + Duration::from_secs(3)));
        assert!(!c.claim_at(id, t0 + Duration::from_secs(4)));
        assert_eq!(c.lock().order.len(), 3);
        assert!(!c.claim_at(Uuid::from_u128(2), t0 + Duration::from_secs(4)));
    }

    #[test]
    fn a_claim_expires_exactly_after_its_time_and_leaves_no_second_entry() {
        let c = RecentIds::new(MINUTE, 10);
        let t0 = Instant::now();
        let id = Uuid::from_u128(1);
        assert!(c.claim_at(id, t0));
        assert!(!c.claim_at(id, t0 + MINUTE - Duration::from_nanos(1)));
        assert!(c.claim_at(id, t0 + MINUTE));
        assert_eq!(c.lock().order.len(), 1, "the expired claim was forgotten");
    }

    #[test]
    fn claims_queued_out_of_order_still_expire_on_their_own_time() {
        let c = RecentIds::new(MINUTE, 10);
        let t0 = Instant::now();
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        // a raced b for the lock and lost: queued after b, claimed before it.
        assert!(c.claim_at(b, t0 + Duration::from_secs(1)));
        assert!(c.claim_at(a, t0));
        assert!(!c.claim_at(a, t0 + Duration::from_millis(59_500)));
        assert!(c.claim_at(a, t0 + Duration::from_millis(60_500)));
        // b's claim and a's first are forgotten; a is remembered from its second claim.
        assert!(!c.claim_at(a, t0 + Duration::from_secs(62)));
        assert_eq!(c.lock().order.len(), 1);
    }
}
