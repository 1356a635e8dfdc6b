//! [`run`]: one storage operation within its [`RetryBudget`]: a timeout per try, retries only
//! for transient failures, backoff between tries, and the budget's `total` over all of it.
//! Each try also holds one of its client's [`InFlight`] slots.

use super::failure::Failure;
use crate::queue::retry::RetryBudget;
use crate::telemetry::metrics;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// How many requests one queue or blob client has under way at once.
///
/// A runner following 2,000 jobs has 2,000 message extensions and heartbeats due in the same
/// second when the jobs started together. Sent all at once, each would hold its request, its
/// connection and its buffers (about 20 KB) until Storage answered, and open as many
/// connections; taking turns, they cost 64 of each, and at a few milliseconds per request
/// they are all done within a second. The ingress's commands are far fewer than 64 at a time.
pub(crate) const MAX_IN_FLIGHT: usize = 64;

/// The request slots of one client ([`MAX_IN_FLIGHT`]).
#[derive(Debug, Clone)]
pub(crate) struct InFlight(Arc<Semaphore>);

impl Default for InFlight {
    fn default() -> Self {
        InFlight(Arc::new(Semaphore::new(MAX_IN_FLIGHT)))
    }
}

/// Runs `call` with the clients `clients` gives until it succeeds, fails for good, or the
/// budget is spent; returns the last failure then (`exhausted_after` set when the budget ran
/// out on transient failures). Each try waits for a slot of `in_flight` first; the wait
/// counts towards the budget's `total`, not towards the try's timeout.
pub(crate) async fn run<C, T, F, Fut>(
    budget: &RetryBudget,
    in_flight: &InFlight,
    clients: impl Fn() -> Result<C, Failure>,
    call: F,
) -> Result<T, Failure>
where
    F: Fn(C) -> Fut,
    Fut: Future<Output = azure_core::Result<T>>,
{
    let attempts = budget.attempts.max(1);
    let ends = budget
        .total
        .map(|total| tokio::time::Instant::now() + total);
    let left = || ends.map(|ends| ends.saturating_duration_since(tokio::time::Instant::now()));
    let mut attempt = 1;
    loop {
        let limit = left().map_or(budget.per_try_timeout, |left| {
            left.min(budget.per_try_timeout)
        });
        let slot = match left() {
            Some(left) => tokio::time::timeout(left, in_flight.0.acquire()).await.ok(),
            None => Some(in_flight.0.acquire().await),
        };
        let Some(Ok(_slot)) = slot else {
            // Out of time waiting for a slot (the semaphore is never closed).
            let failure = Failure {
                message: format!(
                    "all {MAX_IN_FLIGHT} request slots stayed busy for the rest of the time allowed"
                ),
                ..Failure::timeout(limit)
            };
            metrics::storage_try(&failure.metric_label());
            return Err(failure);
        };
        let failure = match tokio::time::timeout(limit, call(clients()?)).await {
            Ok(Ok(value)) => {
                metrics::storage_try("ok");
                return Ok(value);
            }
            Ok(Err(e)) => Failure::from_sdk(&e),
            Err(_) => Failure::timeout(limit),
        };
        metrics::storage_try(&failure.metric_label());
        if !failure.transient {
            return Err(failure);
        }
        let wait = budget.backoff(attempt);
        // No try after the wait would have any time left.
        if attempt >= attempts || left().is_some_and(|left| left <= wait) {
            return Err(Failure {
                exhausted_after: Some(attempt),
                ..failure
            });
        }
        tracing::debug!(attempt, error = %failure.message, ?wait, "transient storage failure; retrying");
        metrics::retry("storage");
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// Counts the calls under way, and the most seen at once.
    #[derive(Default)]
    struct Gauge {
        now: AtomicUsize,
        most: AtomicUsize,
    }

    impl Gauge {
        async fn call(&self, takes: Duration) -> azure_core::Result<()> {
            let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(takes).await;
            self.now.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_has_at_most_max_in_flight_requests_under_way_and_the_rest_take_turns() {
        let gauge = Gauge::default();
        let in_flight = InFlight::default();
        let budget = RetryBudget::background();
        let calls = (0..3 * MAX_IN_FLIGHT).map(|_| {
            run(
                &budget,
                &in_flight,
                || Ok(()),
                |()| gauge.call(Duration::from_millis(10)),
            )
        });
        let results = futures::future::join_all(calls).await;
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(gauge.most.load(Ordering::SeqCst), MAX_IN_FLIGHT);
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_for_a_slot_counts_towards_the_total_and_ends_in_a_clear_failure() {
        let gauge = Gauge::default();
        let in_flight = InFlight::default();
        let budget = RetryBudget::interactive();
        let background = RetryBudget::background();
        // Every slot busy for longer than the interactive budget's total.
        let hogs = (0..MAX_IN_FLIGHT).map(|_| {
            run(
                &background,
                &in_flight,
                || Ok(()),
                |()| gauge.call(Duration::from_secs(3)),
            )
        });
        let late = async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            let started = tokio::time::Instant::now();
            let result = run(
                &budget,
                &in_flight,
                || Ok(()),
                |()| gauge.call(Duration::ZERO),
            )
            .await;
            (result, started.elapsed())
        };
        let (_, (result, waited)) = tokio::join!(futures::future::join_all(hogs), late);
        let failure = result.expect_err("no slot came free in time");
        assert!(failure.transient);
        assert!(
            failure.message.contains("request slots"),
            "{}",
            failure.message
        );
        assert_eq!(waited, budget.total.unwrap_or_default());
    }
}
