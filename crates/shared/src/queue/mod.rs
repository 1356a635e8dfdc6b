//! Queue access behind [`JobQueue`], so the services (and tests) do not depend on the SDK.
//!
//! - [`settings`]: [`QueueSettings`](settings::QueueSettings) from the environment (connection
//!   string or endpoint, queue name).
//! - [`connection`]: parsing `AZURE_STORAGE_CONNECTION_STRING`.
//! - [`sas`]: account SAS tokens signed with a shared key (the 1.x SDK has no shared-key auth).
//! - [`retry`]: [`RetryBudget`](retry::RetryBudget), the time limits and backoff of one operation.
//! - `failure`: the [`QueueError`] a failed try becomes (whether a try is transient, the
//!   auth forms, SAS renewal and the retry loop are shared with blobs in `crate::storage`).
//! - `clients`: the SDK clients for the queue and its poison queue.
//! - [`azure`]: [`AzureJobQueue`](azure::AzureJobQueue), over the GA `azure_storage_queue` crate;
//!   it re-exports the settings and the budget.

pub mod azure;
mod clients;
pub mod connection;
mod failure;
pub mod retry;
pub mod sas;
pub mod settings;

use async_trait::async_trait;
use std::time::Duration;

/// One message taken from the queue. Invisible to other consumers until its visibility ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub message_id: String,
    /// Needed to update or delete the message; replaced by every update.
    pub pop_receipt: String,
    /// 1 on first delivery; each redelivery adds one.
    pub dequeue_count: u32,
    /// The message text as stored (base64 JSON for job messages).
    pub text: String,
}

/// Why a queue operation failed. Messages are safe to log: SAS signatures are redacted.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum QueueError {
    /// The queue could not be reached in time, or answered 5xx/429 on every attempt.
    #[error("queue unavailable: {0}")]
    Unavailable(String),
    /// The queue answered that the caller may not do this (401/403).
    #[error("queue access denied: {0}")]
    Forbidden(String),
    /// The message or pop receipt is no longer valid (404): another consumer owns it now.
    #[error("queue message not found (its visibility ended or it was deleted)")]
    MessageGone,
    /// Any other answer.
    #[error("queue error: {0}")]
    Other(String),
}

impl QueueError {
    /// Worth trying again later.
    pub fn is_transient(&self) -> bool {
        matches!(self, QueueError::Unavailable(_))
    }
}

/// The most a queue message may hold (Azure Queue Storage: 64 KiB); the services' messages are
/// base64 text, so this is their length in bytes. The service refuses a longer one.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// The job queue and its poison queue (`<name>-poison`).
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Creates the queue and its poison queue if missing. A 403 (deployments where the
    /// identity may not create queues) is not an error: the deployment created them.
    async fn ensure_exists(&self) -> Result<(), QueueError>;
    /// Checks that the queue answers (readiness).
    async fn ping(&self) -> Result<(), QueueError>;
    /// Appends a message.
    async fn send(&self, text: &str) -> Result<(), QueueError>;
    /// Takes up to `max` (1..=32) messages, invisible to others for `visibility`.
    async fn receive(&self, max: u8, visibility: Duration) -> Result<Vec<Received>, QueueError>;
    /// Extends a message's invisibility; returns the new pop receipt.
    async fn extend(&self, message: &Received, visibility: Duration) -> Result<String, QueueError>;
    /// Replaces a message's text and extends its invisibility; returns the new pop receipt.
    /// A later delivery of the message carries the new text.
    async fn replace(
        &self,
        message: &Received,
        text: &str,
        visibility: Duration,
    ) -> Result<String, QueueError>;
    /// Deletes a message (with its latest pop receipt).
    async fn delete(&self, message: &Received) -> Result<(), QueueError>;
    /// Appends a message to the poison queue.
    async fn send_poison(&self, text: &str) -> Result<(), QueueError>;
    /// The approximate number of messages on the queue (`poison`: on the poison queue), for
    /// the queue-depth metric. Queues that cannot tell answer an error.
    async fn approximate_len(&self, poison: bool) -> Result<u64, QueueError> {
        let _ = poison;
        Err(QueueError::Other(
            "this queue cannot tell its length".to_owned(),
        ))
    }
}

/// Opens the Azure queue from validated settings, with a credential when the queue is reached
/// by endpoint rather than by connection string. With a credential, a background task keeps
/// its storage token fresh, so that no queue call (each has a short time limit on the
/// ingress) waits for a token to be fetched.
pub fn open(
    settings: azure::QueueSettings,
    credential: Option<std::sync::Arc<dyn azure_core::credentials::TokenCredential>>,
) -> Result<std::sync::Arc<dyn JobQueue>, QueueError> {
    if let Some(credential) = &credential {
        tokio::spawn(keep_token_fresh(credential.clone()));
    }
    Ok(std::sync::Arc::new(azure::AzureJobQueue::new(
        settings, credential,
    )?))
}

/// Asks for the storage token now and every two minutes. The credential caches tokens and
/// renews them shortly before they expire, so most calls return at once and the renewal
/// happens here rather than inside a queue call.
async fn keep_token_fresh(
    credential: std::sync::Arc<dyn azure_core::credentials::TokenCredential>,
) {
    const SCOPE: &str = "https://storage.azure.com/.default";
    loop {
        if let Err(e) = credential.get_token(&[SCOPE], None).await {
            let error = crate::secret::redact_url_secrets(&e.to_string());
            tracing::warn!(%error, "could not get a storage token");
        }
        tokio::time::sleep(std::time::Duration::from_secs(120)).await;
    }
}

/// What the runner puts on `<queue>-poison` for a message it gives up on: the reason, and the
/// original text unchanged so an operator can inspect it or put it back on the queue.
/// Base64 of UTF-8 JSON, like job messages.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PoisonRecord {
    /// Why the message was given up on, in words an operator understands.
    pub reason: String,
    /// The original message's id on the job queue.
    pub message_id: String,
    /// How many times the original was delivered.
    pub dequeue_count: u32,
    /// When it was given up on (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub poisoned_at: time::OffsetDateTime,
    /// The original message text, exactly as it was on the queue; only its beginning when the
    /// whole would not fit one queue message (see `original_truncated`).
    pub original: String,
    /// True when `original` was cut to fit the poison record in one queue message.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub original_truncated: bool,
}

/// The largest poison record, encoded: under the queue's 64 KiB message limit.
pub const POISON_RECORD_MAX: usize = 60 * 1024;

impl PoisonRecord {
    pub fn new(message: &Received, reason: impl Into<String>) -> Self {
        let mut record = PoisonRecord {
            reason: reason.into(),
            message_id: message.message_id.clone(),
            dequeue_count: message.dequeue_count,
            poisoned_at: time::OffsetDateTime::now_utc(),
            original: message.text.clone(),
            original_truncated: false,
        };
        // JSON escaping and base64 can make the record much larger than the original (a
        // backslash becomes two characters, then a third more): cut until it fits.
        while record.encode().len() > POISON_RECORD_MAX {
            let chars = record.original.chars().count();
            if chars == 0 {
                let keep = record.reason.chars().count() / 2;
                record.reason = record.reason.chars().take(keep).collect();
                continue;
            }
            record.original = record.original.chars().take(chars * 3 / 4).collect();
            record.original_truncated = true;
        }
        record
    }

    pub fn encode(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .encode(serde_json::to_vec(self).unwrap_or_default())
    }

    pub fn decode(text: &str) -> Option<Self> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(text: String) -> Received {
        Received {
            message_id: "m1".into(),
            pop_receipt: "p1".into(),
            dequeue_count: 6,
            text,
        }
    }

    #[test]
    fn poison_record_round_trips_and_keeps_the_original() {
        let r = PoisonRecord::new(&received("aGVsbG8=".into()), "unreadable");
        assert_eq!(PoisonRecord::decode(&r.encode()), Some(r.clone()));
        assert_eq!(
            (r.original.as_str(), r.original_truncated, r.dequeue_count),
            ("aGVsbG8=", false, 6)
        );
    }

    #[test]
    fn poison_record_of_the_largest_messages_still_fits_one_message() {
        // Plain, escaping-heavy, and multi-byte originals up to the queue's own limit.
        for original in [
            "x".repeat(64 * 1024),
            "\\".repeat(40_000),
            "€".repeat(21_000),
            "\"".repeat(30_000),
        ] {
            let r = PoisonRecord::new(&received(original.clone()), "too big");
            assert!(
                r.encode().len() <= POISON_RECORD_MAX,
                "{} bytes",
                r.encode().len()
            );
            assert!(r.original_truncated);
            assert!(original.starts_with(&r.original), "keeps the beginning");
            assert!(
                r.original.len() > 10_000,
                "keeps a useful part: {}",
                r.original.len()
            );
        }
        // A huge reason cannot make it loop forever.
        let r = PoisonRecord::new(&received(String::new()), "r".repeat(100_000));
        assert!(r.encode().len() <= POISON_RECORD_MAX);
    }
}
