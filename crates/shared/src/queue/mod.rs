//! Queue access behind [`JobQueue`], so the services (and tests) do not depend on the SDK.
//!
//! - [`settings`]: [`QueueSettings`](settings::QueueSettings) from the environment (connection
//!   string or endpoint, queue name).
//! - [`connection`]: parsing `AZURE_STORAGE_CONNECTION_STRING`.
//! - [`sas`]: account SAS tokens signed with a shared key (the 1.x SDK has no shared-key auth).
//! - [`retry`]: [`RetryBudget`](retry::RetryBudget), the time limits and backoff of one operation.
//! - `failure`: one failed try: transient or not, and the [`QueueError`] it becomes.
//! - `clients`: the SDK clients for the queue and its poison queue, and when our SAS is renewed.
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
    /// Deletes a message (with its latest pop receipt).
    async fn delete(&self, message: &Received) -> Result<(), QueueError>;
    /// Appends a message to the poison queue.
    async fn send_poison(&self, text: &str) -> Result<(), QueueError>;
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
    /// The original message text, exactly as it was on the queue (its first
    /// [`POISON_ORIGINAL_MAX`] characters when it was longer: see `original_truncated`).
    pub original: String,
    /// True when `original` was cut to fit the poison record in one queue message.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub original_truncated: bool,
}

/// How much of the original text a poison record keeps: with the record's own base64 the
/// message stays under the queue's 64 KiB.
pub const POISON_ORIGINAL_MAX: usize = 40_000;

impl PoisonRecord {
    pub fn new(message: &Received, reason: impl Into<String>) -> Self {
        PoisonRecord {
            reason: reason.into(),
            message_id: message.message_id.clone(),
            dequeue_count: message.dequeue_count,
            poisoned_at: time::OffsetDateTime::now_utc(),
            original: message.text.chars().take(POISON_ORIGINAL_MAX).collect(),
            original_truncated: message.text.chars().count() > POISON_ORIGINAL_MAX,
        }
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
    fn poison_record_of_the_largest_message_still_fits_one_message() {
        let r = PoisonRecord::new(&received("x".repeat(64 * 1024)), "too big");
        assert!(r.original_truncated);
        assert_eq!(r.original.len(), POISON_ORIGINAL_MAX);
        assert!(r.encode().len() < 64 * 1024, "{} bytes", r.encode().len());
    }
}
