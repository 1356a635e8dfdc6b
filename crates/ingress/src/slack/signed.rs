//! A request whose Slack signature checked out, and what every route takes from it: the
//! signature (job ids derive from it), the time, the day its job record is filed under, and the
//! one acknowledgement deadline. Commands and interactions are verified here alike.

use crate::slack::verify::{Verifier, VerifyError};
use axum::http::HeaderMap;
use time::{Date, OffsetDateTime};
use tokio::time::Instant;

/// What a verified request carries.
#[derive(Debug, Clone)]
pub struct Signed {
    /// `X-Slack-Signature`, verified.
    pub signature: String,
    pub now: OffsetDateTime,
    /// From Slack's request timestamp, so that every copy of the request names one record day.
    pub record_day: Date,
    /// When the answer must be on its way (see [`crate::run::ACK_DEADLINE`]).
    pub deadline: Instant,
}

/// Checks the signature and timestamp of `body` against `headers`. `deadline` is the one
/// acknowledgement deadline, set when the request arrived.
pub fn verify(
    verifier: &Verifier,
    headers: &HeaderMap,
    body: &[u8],
    deadline: Instant,
) -> Result<Signed, VerifyError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now = OffsetDateTime::now_utc();
    let timestamp = header("x-slack-request-timestamp");
    let signature = header("x-slack-signature");
    verifier.verify(timestamp, signature, body, now.unix_timestamp())?;
    // Verified above, so the timestamp is present and recent.
    let record_day = timestamp
        .and_then(|t| t.trim().parse::<i64>().ok())
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
        .unwrap_or(now)
        .date();
    Ok(Signed {
        signature: signature.unwrap_or_default().to_owned(),
        now,
        record_day,
        deadline,
    })
}
