//! The double's subscription read throttle, per `shared/reference/azure-automation.md`: ARM
//! keeps a token bucket of reads per subscription and principal (250 reads, refilled at 25 a
//! second). Every GET takes a token; with the bucket empty it answers 429 with `Retry-After`
//! (whole seconds) and ARM's `SubscriptionRequestsThrottled` envelope. Every read answer says
//! what is left in `x-ms-ratelimit-remaining-subscription-reads`; writes say
//! `x-ms-ratelimit-remaining-subscription-writes` (not modelled: always plenty).
//!
//! Off by default (existing tests do not pace their reads): the header then reports a full
//! bucket. [`ArmServer::throttle_reads`](super::ArmServer::throttle_reads) turns it on.

use super::{SUBSCRIPTION, Shared};
use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// ARM's read bucket: size and refill per second.
pub const READ_BUCKET: f64 = 250.0;
pub const READ_REFILL: f64 = 25.0;
/// What the writes header says (ARM's write bucket holds 200).
const WRITES_LEFT: &str = "199";

/// A token bucket of reads.
#[derive(Debug, Clone)]
pub(super) struct Bucket {
    size: f64,
    per_second: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub(super) fn new(size: f64, per_second: f64) -> Self {
        Bucket {
            size,
            per_second,
            tokens: size,
            at: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.size);
        self.at = now;
    }

    /// Takes a token: `Ok(left)`, or `Err(wait)` until one is there.
    fn take(&mut self, now: Instant) -> Result<u64, Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(self.tokens.floor() as u64)
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - self.tokens) / self.per_second,
            ))
        }
    }
}

/// Counts reads against the bucket (after ARM's auth and api-version checks) and stamps the
/// remaining-budget headers on every answer.
pub(super) async fn reads(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::GET {
        let mut response = next.run(request).await;
        response.headers_mut().insert(
            "x-ms-ratelimit-remaining-subscription-writes",
            HeaderValue::from_static(WRITES_LEFT),
        );
        return response;
    }
    let taken = {
        let mut inner = shared.lock();
        let forced = inner.remaining_reads_override;
        match inner.read_bucket.as_mut() {
            None => Ok(forced.unwrap_or(READ_BUCKET as u64)),
            Some(bucket) => bucket
                .take(Instant::now())
                .map(|left| forced.unwrap_or(left)),
        }
    };
    let (mut response, left) = match taken {
        Ok(left) => (next.run(request).await, left),
        Err(wait) => {
            shared.lock().throttled_reads += 1;
            (throttled(wait), 0)
        }
    };
    response.headers_mut().insert(
        "x-ms-ratelimit-remaining-subscription-reads",
        HeaderValue::from(left),
    );
    response
}

/// ARM's answer to a read over the subscription's budget.
fn throttled(wait: Duration) -> Response {
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    let message = format!(
        "Number of 'read' requests for subscription '{SUBSCRIPTION}' actor '6f1c1a6e-0000-4000-8000-00000000c11d' exceeded. Please try again after '{seconds}' seconds after additional tokens are available. Refer to https://aka.ms/arm-throttling"
    );
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        Json(json!({"error": {"code": "SubscriptionRequestsThrottled", "message": message}})),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}
