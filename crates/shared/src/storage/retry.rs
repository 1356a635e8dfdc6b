//! [`run`]: one storage operation within its [`RetryBudget`]: a timeout per try, retries only
//! for transient failures, backoff between tries.

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
    let mut attempt = 1;
    loop {
        let failure = match tokio::time::timeout(budget.per_try_timeout, call(clients()?)).await {
            Ok(Ok(value)) => {
                metrics::storage_try("ok");
                return Ok(value);
            }
            Ok(Err(e)) => Failure::from_sdk(&e),
            Err(_) => Failure::timeout(budget.per_try_timeout),
        };
        metrics::storage_try(&failure.metric_label());
        if !failure.transient {
            return Err(failure);
        }
        if attempt >= attempts {
            return Err(Failure {
                exhausted_after: Some(attempts),
                ..failure
            });
        }
        let wait = budget.backoff(attempt);
        tracing::debug!(attempt, error = %failure.message, ?wait, "transient storage failure; retrying");
        metrics::retry("storage");
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}
