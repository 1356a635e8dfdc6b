//! Putting one job message on the queue per Slack request: the replay memory, then the one
//! bounded send. Used by typed commands, `rerun` and `stop` alike.

use crate::app::AppState;
use chatops_shared::job::JobMessage;
use chatops_shared::queue::QueueError;
use chatops_shared::recent_ids::RecentIds;
use uuid::Uuid;

/// What became of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// Put on the queue now.
    Now,
    /// A replay of a request this process queued a few minutes ago: not queued again, the
    /// caller answers as it did then.
    Before,
}

/// Queues `message`, signed with the ingress's job key, unless this process queued the same
/// `job_id` recently.
pub async fn enqueue(state: &AppState, message: &JobMessage) -> Result<Queued, QueueError> {
    if !state.replays.claim(message.job_id) {
        tracing::info!("replayed request: answering again without queueing");
        return Ok(Queued::Before);
    }
    // Given back unless the job is queued, also when this request is dropped mid-way (its
    // time limit, or the client going away), so that a later copy is not told "queued".
    let claim = Claim {
        claims: &state.replays,
        job_id: message.job_id,
        queued: false,
    };
    state.queue.send(&message.encode(&state.job_key)).await?;
    claim.queued();
    Ok(Queued::Now)
}

/// A job id claimed against replays, released on drop unless the job was queued.
struct Claim<'a> {
    claims: &'a RecentIds,
    job_id: Uuid,
    queued: bool,
}

impl Claim<'_> {
    fn queued(mut self) {
        self.queued = true;
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if !self.queued {
            self.claims.release(&self.job_id);
        }
    }
}
