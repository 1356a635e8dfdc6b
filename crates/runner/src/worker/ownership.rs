//! Who runs a job: the record decides. A delivery of a job message either owns the job (it
//! created the record, or took it over from a dead runner), or finds it ended, or waits while
//! another runner holds it.
//!
//! - **Created**: this runner made the record (`If-None-Match: *`): nobody else can.
//! - **Ended**: the record has a final state. Reported already: the message is deleted without
//!   a post. Not reported, and its runner dead (it died between the end and the post): the job
//!   is taken over and its final status posted from the record.
//! - **Held elsewhere**: another runner's heartbeat is fresh. This delivery is a second message
//!   for the job (two ingress replicas queued one request), or the holder's own message back
//!   after a lost answer: it is kept hidden and the record is looked at again until the job
//!   ends or its holder is dead. It is never run.
//! - **Taken over**: the holder's heartbeat is older than the holder's visibility timeout (the
//!   record's `dead_after_ms`; this runner's own when the record does not say): its runner is
//!   dead. Or the record names no holder: its runner handed the job over at shutdown (`leave`).
//!   A conditional write makes this runner the holder (one runner wins).

use super::Worker;
use super::extender::Extender;
use chatops_shared::job::JobMessage;
use chatops_shared::records::{
    Claim, Holder, JobState, RecordsError, StateChange, Versioned, record_name_of,
};
use time::OffsetDateTime;

/// What the record says about a delivery.
pub(super) enum Owned {
    /// This runner holds the job now. `started` when a runner had started it before (it was
    /// taken over, or this runner's earlier attempt got that far).
    Run {
        record: Box<Versioned>,
        started: bool,
    },
    /// The job ended and its final status was delivered.
    Reported,
    /// The job ended; its final status still has to be posted.
    Unreported(Box<Versioned>),
}

/// What this runner does with a record it holds.
fn owned(record: Versioned) -> Owned {
    if record.record.state.is_final() {
        return Owned::Unreported(Box::new(record));
    }
    let started = record.record.started_at.is_some() || record.record.state == JobState::Running;
    Owned::Run {
        record: Box::new(record),
        started,
    }
}

impl Worker {
    /// Claims the job's record, waiting out a storage outage (up to `final_notify_patience`)
    /// while the message stays hidden: an outage does not use up the message's deliveries.
    async fn claim(&self, job: &JobMessage) -> Result<Claim, RecordsError> {
        self.retrying(|| {
            self.records.claim(
                job,
                &self.settings.runner_id,
                OffsetDateTime::now_utc(),
                self.settings.dead_after(),
            )
        })
        .await
    }

    /// Finds out who runs `job`, waiting while a live runner holds it. Errors are transient:
    /// the message is left for a retry.
    pub(super) async fn own(
        &self,
        job: &JobMessage,
        extender: &Extender,
    ) -> Result<Owned, RecordsError> {
        let me = &self.settings.runner_id;
        let mut current = match self.claim(job).await? {
            Claim::Created(record) => {
                crate::metrics::dispatched(job);
                return Ok(Owned::Run {
                    record: Box::new(record),
                    started: false,
                });
            }
            Claim::Exists(record) => record,
        };
        let mut waiting_logged = false;
        loop {
            let record = &current.record;
            if record.state.is_final() && record.reported {
                return Ok(Owned::Reported);
            }
            let holder = record.holder.as_ref().map(|h| h.runner.clone());
            let mine = holder.as_deref() == Some(me.as_str());
            let now = OffsetDateTime::now_utc();
            if mine {
                // Its own record: a create whose answer was lost, or an earlier attempt here
                // (whose heartbeat stopped meanwhile): beat again before going on, so that no
                // runner holding a copy takes the job for dead.
                let mut renewed = record.clone();
                if let Some(holder) = renewed.holder.as_mut() {
                    holder.beat(now, self.settings.dead_after());
                }
                match self.records.replace(&current, renewed).await {
                    Ok(record) => return Ok(owned(record)),
                    // Taken over just now, or a stop request: look again.
                    Err(RecordsError::Conflict(_)) => {}
                    Err(e) => return Err(e),
                }
            } else if record.holder_is_dead(now, self.settings.dead_after()) {
                // No holder: its runner handed it over at shutdown (`leave`).
                let note = match &holder {
                    Some(dead) => format!("taken over from {dead}, whose heartbeat stopped"),
                    None => "taken over".to_owned(),
                };
                let mut taken = record.clone();
                taken.holder = Some(Holder::new(me, now, self.settings.dead_after()));
                taken.history.push(StateChange {
                    state: taken.state,
                    at: now,
                    runner: me.clone(),
                    note: Some(note),
                });
                match self.records.replace(&current, taken).await {
                    Ok(record) => {
                        match holder {
                            Some(dead) => {
                                tracing::warn!(runner = %dead, "took over a job whose runner is gone");
                            }
                            None => tracing::info!("took over a job its runner handed over"),
                        }
                        return Ok(owned(record));
                    }
                    // Another runner took it first, or its holder beat just now: look again.
                    Err(RecordsError::Conflict(_)) => {}
                    Err(e) => return Err(e),
                }
            } else {
                if !waiting_logged {
                    tracing::info!(
                        holder = holder.as_deref().unwrap_or("none"),
                        "another runner holds this job: keeping this message until it ends"
                    );
                    waiting_logged = true;
                }
                tokio::time::sleep(self.settings.record_poll.max(self.settings.heartbeat() / 2))
                    .await;
            }
            if extender.is_lost().await {
                // Someone else holds this message now; let them deal with it.
                return Err(RecordsError::Conflict(current.name));
            }
            let name = record_name_of(job);
            current = match self.retrying(|| self.records.read(&name)).await? {
                Some(record) => record,
                None => return Err(RecordsError::Conflict(record_name_of(job))),
            };
        }
    }
}
