//! Putting one job message on the queue per Slack request: the replay memory, then the one
//! bounded send. Used by typed commands, forms, `rerun` and `stop` alike.
//!
//! The send has the queue's own retry budget and, on top of it, the request's acknowledgement
//! deadline: whatever the steps before it took, the answer leaves before Slack stops waiting.

use crate::app::AppState;
use chatops_shared::job::JobMessage;
use chatops_shared::queue::{MAX_MESSAGE_BYTES, QueueError};
use chatops_shared::recent_ids::RecentIds;
use tokio::time::Instant;
use uuid::Uuid;

/// Why a message was not queued.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The queue did not confirm before the acknowledgement deadline. The message may still
    /// land (its send was in flight); a later copy of the request is queued again under the
    /// same `job_id`.
    #[error("the queue did not confirm before the acknowledgement deadline")]
    Deadline,
    /// The encoded message is longer than a queue message may be: its values are too long
    /// (a form's fields are not bounded as a typed command is). Not sent.
    #[error("the job message is {bytes} bytes, over the queue's {MAX_MESSAGE_BYTES}")]
    TooLarge { bytes: usize },
}

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
/// `job_id` recently; gives up at `deadline`.
pub async fn enqueue(
    state: &AppState,
    message: &JobMessage,
    deadline: Instant,
) -> Result<Queued, EnqueueError> {
    let text = message.encode(&state.job_key);
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(EnqueueError::TooLarge { bytes: text.len() });
    }
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
    tokio::time::timeout_at(deadline, state.queue.send(&text))
        .await
        .map_err(|_| EnqueueError::Deadline)??;
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
