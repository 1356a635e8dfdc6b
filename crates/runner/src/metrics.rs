//! The runner's metrics: jobs taken, in flight and ended, the time from a command to its job's
//! start, and `GET /metrics` on the health listener (`CHATOPS_RUNNER_ADDR`), which samples the
//! queue depth as it is read. The metrics themselves are in
//! [`chatops_shared::telemetry::metrics`].

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use chatops_shared::job::JobMessage;
use chatops_shared::queue::JobQueue;
use chatops_shared::telemetry::metrics::{self, InFlight};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// How long a scrape waits for each queue-depth sample.
const SAMPLE_LIMIT: Duration = Duration::from_secs(1);

/// A job's message is being handled: it counts as in flight until the guard is dropped.
pub fn job_started() -> InFlight {
    metrics::job_in_flight()
}

/// A runner claimed the job's record first: its dispatch latency, once per job (not per
/// message: a copy of a message, or a redelivery, is no second dispatch).
pub fn dispatched(job: &JobMessage) {
    let waited = OffsetDateTime::now_utc() - job.requested_at;
    metrics::dispatch(waited.try_into().unwrap_or(Duration::ZERO));
}

/// A job ended in `state` (a [`FinalState`](crate::executor::FinalState) label).
pub fn job_finished(state: &'static str) {
    metrics::job_finished(state);
}

/// A message went to the poison queue.
pub fn poison_moved() {
    metrics::poison_moved();
}

/// Azure Resource Manager answered `status` (`None`: no answer).
pub fn arm_answer(status: Option<u16>) {
    metrics::arm_answer(status);
}

/// The ARM read budget allows `reads_per_second` now.
pub fn arm_read_budget(reads_per_second: f64) {
    metrics::arm_read_budget(reads_per_second);
}

/// A response_url or webhook post was answered `status` (`None`: no answer).
pub fn slack_post(status: Option<u16>) {
    metrics::slack_answer("post", status);
}

/// A call to `target` (`arm`, `slack`) is tried again.
pub fn retry(target: &'static str) {
    metrics::retry(target);
}

/// `GET /metrics`: samples the queue depth (skipped when the queue will not say, e.g. a role
/// without metadata reads), then the text format.
pub async fn scrape(State(queue): State<Arc<dyn JobQueue>>) -> impl IntoResponse {
    sample_queue_depth(queue.as_ref()).await;
    ([(CONTENT_TYPE, metrics::CONTENT_TYPE)], metrics::render())
}

/// Samples the depth of the job and poison queues into `chatops_queue_depth`.
pub async fn sample_queue_depth(queue: &dyn JobQueue) {
    for (label, poison) in [("jobs", false), ("poison", true)] {
        match tokio::time::timeout(SAMPLE_LIMIT, queue.approximate_len(poison)).await {
            Ok(Ok(n)) => metrics::queue_depth(label, n),
            Ok(Err(e)) => tracing::debug!(error = %e, "queue depth not sampled"),
            Err(_) => tracing::debug!("queue depth not sampled in time"),
        }
    }
}

/// While metrics are pushed (OTLP) rather than scraped, samples the queue depth every `every`
/// (the push interval), so that the pushed gauge is not stuck at its last scrape.
pub async fn sample_queue_depth_every(queue: Arc<dyn JobQueue>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        sample_queue_depth(queue.as_ref()).await;
    }
}
