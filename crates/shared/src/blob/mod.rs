//! Blob access behind [`BlobStore`], so the services (and tests) do not depend on the SDK: the
//! job records ([`crate::records`]) and the audit log ([`crate::audit`]) are written through it.
//!
//! One [`BlobStore`] is one container. Every call is one request to the service (plus bounded
//! retries of transient failures), so a caller can count its round trips by its calls.
//!
//! Conditional writes are how two writers agree: [`BlobStore::create`] succeeds for one writer
//! only (`If-None-Match: *`), [`BlobStore::replace`] only while the blob is unchanged since it
//! was read (`If-Match: <etag>`). A retried write whose first answer was lost can come back as
//! [`BlobError::AlreadyExists`] or [`BlobError::ConditionNotMet`] although it was applied:
//! callers re-read and decide.
//!
//! - [`settings`]: [`BlobSettings`](settings::BlobSettings) from the environment.
//! - [`azure`]: [`AzureBlobStore`](azure::AzureBlobStore), over the GA `azure_storage_blob` crate.

pub mod azure;
pub mod settings;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Opens the Azure container from validated settings, with a credential when blobs are reached
/// by endpoint rather than by connection string (the queue's [`crate::queue::open`], given the
/// same credential, keeps its token fresh).
pub fn open(
    settings: settings::BlobSettings,
    credential: Option<Arc<dyn TokenCredential>>,
) -> Result<Arc<dyn BlobStore>, BlobError> {
    Ok(Arc::new(azure::AzureBlobStore::new(settings, credential)?))
}

/// User metadata of a blob: keys are lower-case C# identifiers, values ASCII.
pub type Metadata = BTreeMap<String, String>;

/// A blob's version, as the service names it (quotes removed).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ETag(pub String);

impl ETag {
    /// Listing answers give ETags without quotes, headers with them: one form for both.
    pub fn new(raw: &str) -> Self {
        ETag(raw.trim().trim_matches('"').to_owned())
    }
}

/// A blob read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub body: Vec<u8>,
    pub etag: ETag,
    pub metadata: Metadata,
}

/// One blob of a listing: what the listing itself tells, without reading the blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub etag: ETag,
    pub metadata: Metadata,
}

/// One page of a listing (up to 5000 blobs, in name order).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListPage {
    pub blobs: Vec<Listed>,
    /// Where the next page starts; `None` on the last page.
    pub next_marker: Option<String>,
}

/// Why a blob operation failed. Messages are safe to log: SAS signatures are redacted.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum BlobError {
    /// `create` of a blob that exists (409 `BlobAlreadyExists`).
    #[error("the blob exists already")]
    AlreadyExists,
    /// A condition failed (412): the blob changed since it was read, is missing on `replace`,
    /// or an append's position is not the blob's end.
    #[error("the blob changed since it was read")]
    ConditionNotMet,
    /// The service could not be reached in time, or answered 5xx/429 on every attempt.
    #[error("blob storage unavailable: {0}")]
    Unavailable(String),
    /// The service answered that the caller may not do this (401/403).
    #[error("blob storage access denied: {0}")]
    Forbidden(String),
    /// Any other answer (an append blob that is full answers 409 `BlockCountExceedsLimit`,
    /// reported here with that code in the text).
    #[error("blob storage error: {0}")]
    Other(String),
}

impl BlobError {
    /// Worth trying again later.
    pub fn is_transient(&self) -> bool {
        matches!(self, BlobError::Unavailable(_))
    }
}

/// One container of blobs.
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Creates the container if missing. A 403 (an identity that may not create containers)
    /// is not an error: the deployment created it.
    async fn ensure_container(&self) -> Result<(), BlobError>;

    /// Writes a new block blob, only if no blob has that name (`If-None-Match: *`).
    async fn create(
        &self,
        name: &str,
        body: Vec<u8>,
        metadata: &Metadata,
    ) -> Result<ETag, BlobError>;

    /// Replaces a block blob's content and metadata, only if its ETag is still `if_match`.
    async fn replace(
        &self,
        name: &str,
        body: Vec<u8>,
        metadata: &Metadata,
        if_match: &ETag,
    ) -> Result<ETag, BlobError>;

    /// Reads a blob whole; `None` when there is no such blob.
    async fn read(&self, name: &str) -> Result<Option<Blob>, BlobError>;

    /// One page of the blobs whose names start with `prefix`, with their metadata, starting
    /// at `marker` (from the previous page).
    async fn list(&self, prefix: &str, marker: Option<&str>) -> Result<ListPage, BlobError>;

    /// Creates an empty append blob unless one exists; true when this call created it.
    async fn create_append(&self, name: &str) -> Result<bool, BlobError>;

    /// Appends one block at `position`, which must be the blob's length
    /// (`x-ms-blob-condition-appendpos`): otherwise [`BlobError::ConditionNotMet`].
    async fn append(&self, name: &str, block: Vec<u8>, position: u64) -> Result<(), BlobError>;
}
