//! `/readyz`'s answer, cached: the route is public, and each check costs storage calls (a
//! ping may retry), so a flood of checks must not become a flood on the storage account.
//!
//! One check at a time: callers that arrive while a check runs wait for its answer. A good
//! answer is kept for [`READY_FOR`], a bad one for [`UNREADY_FOR`] (so recovery shows soon).

use chatops_shared::queue::JobQueue;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// How long a "ready" answer is reused.
pub const READY_FOR: Duration = Duration::from_secs(5);
/// How long a "not ready" answer is reused.
pub const UNREADY_FOR: Duration = Duration::from_secs(1);
/// The longest one check may take.
pub const CHECK_LIMIT: Duration = Duration::from_secs(3);

/// Whether the queue answered the last check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    QueueUnreachable,
}

/// The last answer and when it was found.
#[derive(Default)]
pub struct ReadinessCache {
    last: Mutex<Option<(Instant, Readiness)>>,
}

impl ReadinessCache {
    /// The cached answer while it is fresh, else a new check of `queue`.
    pub async fn check(&self, queue: &dyn JobQueue) -> Readiness {
        let mut last = self.last.lock().await;
        if let Some((at, answer)) = *last {
            let keep = match answer {
                Readiness::Ready => READY_FOR,
                Readiness::QueueUnreachable => UNREADY_FOR,
            };
            if at.elapsed() < keep {
                return answer;
            }
        }
        let answer = match tokio::time::timeout(CHECK_LIMIT, queue.ping()).await {
            Ok(Ok(())) => Readiness::Ready,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "not ready: queue check failed");
                Readiness::QueueUnreachable
            }
            Err(_) => {
                tracing::warn!("not ready: queue check timed out");
                Readiness::QueueUnreachable
            }
        };
        *last = Some((Instant::now(), answer));
        answer
    }
}
