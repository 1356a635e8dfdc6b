//! The jobs this runner is seeing through now, each with an inbox for further deliveries.
//!
//! A message can come back to the runner that still holds it: when an update's answer was lost
//! (the service replaced the pop receipt, the runner never learned the new one, and the message
//! reappeared when that update's invisibility ended), or as a second message for the same job
//! (a retried enqueue, a replay on another ingress replica). Such a delivery goes to the job
//! that holds it, whose [`Extender`](super::extender::Extender) takes it over, instead of being
//! treated as a new job: it never counts towards `max_dequeue` and is never run or reported
//! twice by this runner.

use chatops_shared::queue::Received;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::Notify;
use uuid::Uuid;

type Inboxes = HashMap<Uuid, Arc<Inbox>>;

/// Where further deliveries of one held job wait for it. Deliveries are rare, so this is a
/// list and a wake-up, a few dozen bytes per job, not a channel (whose first block of slots is
/// about 3 KB, for each of the thousands of jobs a runner may follow).
#[derive(Default)]
struct Inbox {
    waiting: Mutex<Vec<Received>>,
    arrived: Notify,
}

impl Inbox {
    fn put(&self, message: Received) {
        lock(&self.waiting).push(message);
        // Stored for a `next` that is not waiting yet.
        self.arrived.notify_one();
    }

    fn take(&self) -> Vec<Received> {
        std::mem::take(&mut *lock(&self.waiting))
    }
}

/// A panic while holding one of these locks leaves a valid value: keep using it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Job ids held by this runner, each with the inbox of the job that holds it.
#[derive(Clone, Default)]
pub(super) struct HeldJobs {
    inboxes: Arc<Mutex<Inboxes>>,
}

impl HeldJobs {
    /// Holds `job_id` for this delivery (`Some`), or hands the delivery to the job that holds
    /// it already (`None`). One step, so that two deliveries cannot both become the holder.
    pub(super) fn hold(&self, job_id: Uuid, message: Received) -> Option<(Hold, Received)> {
        let mut inboxes = self.lock();
        if let Some(inbox) = inboxes.get(&job_id) {
            inbox.put(message);
            return None;
        }
        let inbox = Arc::new(Inbox::default());
        inboxes.insert(job_id, inbox.clone());
        let hold = Hold {
            jobs: self.clone(),
            job_id,
            inbox,
            released: false,
        };
        Some((hold, message))
    }

    fn lock(&self) -> MutexGuard<'_, Inboxes> {
        lock(&self.inboxes)
    }
}

/// One job held by this runner: further deliveries of it arrive here until it lets go.
pub(super) struct Hold {
    jobs: HeldJobs,
    job_id: Uuid,
    inbox: Arc<Inbox>,
    released: bool,
}

impl Hold {
    /// The next delivery handed to this job (waits until there is one).
    pub(super) async fn next(&mut self) -> Received {
        loop {
            let arrived = self.inbox.arrived.notified();
            {
                let mut waiting = lock(&self.inbox.waiting);
                if !waiting.is_empty() {
                    return waiting.remove(0);
                }
            }
            arrived.await;
        }
    }

    /// Lets go of the job; returns the deliveries that arrived and were not taken yet.
    pub(super) fn release(mut self) -> Vec<Received> {
        self.let_go();
        self.inbox.take()
    }

    fn let_go(&mut self) {
        if !self.released {
            self.jobs.lock().remove(&self.job_id);
            self.released = true;
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.let_go();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str) -> Received {
        Received {
            message_id: id.into(),
            pop_receipt: "p".into(),
            dequeue_count: 1,
            text: String::new(),
        }
    }

    #[tokio::test]
    async fn a_second_delivery_of_a_held_job_goes_to_its_holder_until_it_lets_go() {
        let jobs = HeldJobs::default();
        let job = Uuid::from_u128(1);
        let (mut hold, first) = jobs.hold(job, message("m1")).expect("first holds");
        assert_eq!(first.message_id, "m1");
        assert!(jobs.hold(job, message("m1")).is_none(), "handed over");
        assert_eq!(hold.next().await.message_id, "m1");
        assert!(jobs.hold(Uuid::from_u128(2), message("x")).is_some());

        assert!(jobs.hold(job, message("m2")).is_none());
        let left = hold.release();
        assert_eq!(left.len(), 1, "what arrived is returned");
        let (again, _) = jobs.hold(job, message("m3")).expect("free again");
        drop(again);
        assert!(
            jobs.hold(job, message("m4")).is_some(),
            "a dropped hold lets go"
        );
    }
}
