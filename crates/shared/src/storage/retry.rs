//! [`run`]: one storage operation within its [`RetryBudget`]: a timeout per try, retries only
//! for transient failures, backoff between tries, and the budget's `total` over all of it.

use super::failure::Failure;
use crate::queue::retry::RetryBudget;
use crate::telemetry::metrics;
use std::future::Future;

/// Runs `call` with the clients `clients` gives until it succeeds, fails for good, or the
/// budget is spent; returns the last failure then (`exhausted_after` set when the budget ran
/// out on transient failures).
pub(crate) async fn run<C, T, F, Fut>(
    budget: &RetryBudget,
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
