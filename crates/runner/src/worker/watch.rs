//! While a job runs, its holder looks at the job's record: every `record_poll` (2 s) for a stop
//! request, which it passes to the executor, and every `heartbeat()` (a third of the
//! visibility timeout) it renews its heartbeat, so that other runners know it is alive. If the
//! record names another holder, this runner was taken for dead and the job is no longer its own.
//!
//! Once the executor says stop requests reach the job without it (an Automation job Azure has
//! created: the runner that takes a stop message asks Azure), the record is read only when the
//! heartbeat is due. One runner following 2,000 Automation jobs thus reads about 100 records a
//! second instead of 1,000. The first read after that switch still comes `record_poll` later,
//! so a stop written while the job was being created (Azure answered 404 to the stopper) is
//! seen and passed on.

use super::Worker;
use crate::executor::StopSender;
use chatops_shared::records::{RecordsError, Versioned};
use time::OffsetDateTime;
use tokio::time::Instant;

impl Worker {
    /// Runs until the job is taken over by another runner (returns the new holder); meant to be
    /// dropped when the job ends.
    pub(super) async fn watch(&self, name: &str, stop: &StopSender) -> String {
        let me = &self.settings.runner_id;
        let mut last_beat = Instant::now();
        let mut failures = 0u32;
        // Whether stops reached the job directly before the last read: only reads after the
        // switch may slow down.
        let mut direct = false;
        loop {
            let wait = if direct {
                self.settings
                    .heartbeat()
                    .saturating_sub(last_beat.elapsed())
            } else {
                self.settings.record_poll
            };
            direct = stop.is_reached_directly();
            tokio::time::sleep(wait.max(self.settings.record_poll)).await;
            let current = match Box::pin(self.records.read(name)).await {
                Ok(Some(current)) => current,
                Ok(None) => continue,
                Err(e) => {
                    failures += 1;
                    if failures % 10 == 1 {
                        tracing::warn!(error = %e, failures, "could not read the job's record");
                    }
                    continue;
                }
            };
            if current.record.stop.is_some() {
                stop.stop();
            }
            match current.record.holder.as_ref().map(|h| &h.runner) {
                Some(holder) if holder != me => return holder.clone(),
                _ => {}
            }
            if last_beat.elapsed() < self.settings.heartbeat() {
                continue;
            }
            match Box::pin(self.beat(current)).await {
                Ok(()) => {
                    last_beat = Instant::now();
                    failures = 0;
                }
                // Changed meanwhile (a stop request): the next read sees it.
                Err(RecordsError::Conflict(_)) => {}
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, failures, "could not renew the job's heartbeat");
                }
            }
        }
    }

    async fn beat(&self, current: Versioned) -> Result<(), RecordsError> {
        let mut record = current.record.clone();
        if let Some(holder) = record.holder.as_mut() {
            holder.beat(OffsetDateTime::now_utc(), self.settings.dead_after());
        }
        self.records.replace(&current, record).await.map(|_| ())
    }
}
