//! Handing jobs over at shutdown. After SIGTERM the runner takes no more messages, starts no
//! more jobs (one not started yet is handed over at once, unstarted) and gives the jobs in
//! flight `shutdown_grace` to end. A job still running then (a long Automation job, a
//! script longer than the grace) is handed over rather than dropped (one that has its outcome
//! already goes on reporting it, within the hand-over limit): its record lets go of it
//! (no holder, a line in its history) and its message is made visible at once. The next runner
//! takes it up on its next poll, follows an Automation job to its end by name, and reports a
//! script `Interrupted` (the supervisor kills it with this runner; it is never run twice).
//! Dropped, the job would wait for its message's invisibility and its holder's heartbeat to
//! lapse: up to a visibility timeout (60 s by default) without a status.

use super::Worker;
use super::extender::Held;
use chatops_shared::records::StateChange;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use time::OffsetDateTime;
use tokio::sync::watch;

/// Where the runner is in its shutdown, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Running,
    /// Shutdown began: no job starts any more.
    Stopping,
    /// The shutdown grace is over: jobs still running hand themselves over.
    Leaving,
}

/// The signals of the shutdown, shared by the worker's clones.
#[derive(Clone)]
pub(super) struct Leaving(Arc<watch::Sender<Phase>>);

impl Default for Leaving {
    fn default() -> Self {
        Leaving(Arc::new(watch::channel(Phase::Running).0))
    }
}

impl Leaving {
    /// Shutdown began: no job starts from now on.
    pub(super) fn stopping(&self) {
        self.0.send_if_modified(|phase| {
            let earlier = *phase < Phase::Stopping;
            if earlier {
                *phase = Phase::Stopping;
            }
            earlier
        });
    }

    /// Whether shutdown began ([`Leaving::stopping`]).
    pub(super) fn is_stopping(&self) -> bool {
        *self.0.borrow() >= Phase::Stopping
    }

    /// Tells every job in flight to hand itself over.
    pub(super) fn now(&self) {
        self.0.send_replace(Phase::Leaving);
    }

    /// Completes once [`Leaving::now`] was called (at once if it was already).
    pub(super) async fn wait(&self) {
        let mut leaving = self.0.subscribe();
        // The sender lives in `self`: the channel cannot close while this waits.
        let _ = leaving.wait_for(|phase| *phase == Phase::Leaving).await;
    }

    /// Completes once [`Leaving::now`] was called while the job has not ended (`ended`, set
    /// on [`Progress::Ended`](crate::executor::Progress::Ended)); never after: a job that has
    /// ended is reported, not handed over.
    pub(super) async fn wait_unless_ended(&self, ended: &AtomicBool) {
        self.wait().await;
        if ended.load(Ordering::Acquire) {
            std::future::pending::<()>().await;
        }
    }
}

/// The history note of a job handed over.
const HANDED_OVER: &str =
    "its runner stopped (shutdown) before the job ended, and handed it over to the next runner";
/// The history note of a job handed over before it started.
const HANDED_OVER_UNSTARTED: &str = "its runner was shutting down, so it did not start the job and handed it over to the next runner";

impl Worker {
    /// Lets go of a job still running when the grace ended (its work is dropped already: a
    /// script is killed with it), or (`started` false) not started as shutdown began: the
    /// record first, so that the runner that takes the message finds the job free, then the
    /// messages.
    pub(super) async fn hand_over(&self, name: &str, held: &Held, started: bool) {
        let me = self.settings.runner_id.as_str();
        let now = OffsetDateTime::now_utc();
        let released = self
            .records
            .update(name, |record| {
                if record.holder.as_ref().is_none_or(|h| h.runner != me) {
                    return false;
                }
                record.holder = None;
                record.history.push(StateChange {
                    state: record.state,
                    at: now,
                    runner: me.to_owned(),
                    note: Some(
                        if started {
                            HANDED_OVER
                        } else {
                            HANDED_OVER_UNSTARTED
                        }
                        .to_owned(),
                    ),
                });
                true
            })
            .await;
        match released {
            Ok(_) => {
                tracing::info!(started, "shutting down: job handed over to the next runner")
            }
            // The next runner waits for the heartbeat to lapse, as after a crash.
            Err(e) => {
                tracing::warn!(error = %e, "could not let go of the job in its record; the next runner takes it once its heartbeat is old")
            }
        }
        let mut messages = held.copies.clone();
        if !held.lost {
            messages.push(held.message.clone());
        }
        self.hand_back(messages).await;
    }
}
