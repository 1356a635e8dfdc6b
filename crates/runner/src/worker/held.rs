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
use tokio::sync::mpsc;
use uuid::Uuid;

type Inboxes = HashMap<Uuid, mpsc::UnboundedSender<Received>>;

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
        let message = match inboxes.get(&job_id) {
            Some(inbox) => match inbox.send(message) {
                Ok(()) => return None,
                // Its holder is gone without letting go (cannot happen: a `Hold` lets go when
                // dropped); this delivery becomes the holder.
                Err(mpsc::error::SendError(message)) => message,
            },
            None => message,
        };
        let (sender, inbox) = mpsc::unbounded_channel();
        inboxes.insert(job_id, sender);
        let hold = Hold {
            jobs: self.clone(),
            job_id,
            inbox,
            released: false,
        };
        Some((hold, message))
    }

    fn lock(&self) -> MutexGuard<'_, Inboxes> {
        // A panic while holding this lock leaves a valid map: keep using it.
        self.inboxes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One job held by this runner: further deliveries of it arrive here until it lets go.
pub(super) struct Hold {
    jobs: HeldJobs,
    job_id: Uuid,
    inbox: mpsc::UnboundedReceiver<Received>,
    released: bool,
}

impl Hold {
    /// The next delivery handed to this job.
    pub(super) async fn next(&mut self) -> Option<Received> {
        self.inbox.recv().await
    }

    /// Lets go of the job; returns the deliveries that arrived and were not taken yet.
    pub(super) fn release(mut self) -> Vec<Received> {
        self.let_go();
        let mut left = Vec::new();
        while let Ok(message) = self.inbox.try_recv() {
            left.push(message);
        }
        left
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
        assert_eq!(hold.next().await.map(|m| m.message_id), Some("m1".into()));
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
