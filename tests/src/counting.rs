//! A [`BlobStore`] decorator that counts the calls made through it: every call of the trait is
//! one request to the service (plus retries of transient failures), so the count is the number
//! of storage round trips a piece of code costs.

use async_trait::async_trait;
use chatops_shared::blob::{BlobError, BlobStore, ETag, ListPage, Metadata};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct CountingStore {
    inner: Arc<dyn BlobStore>,
    calls: AtomicUsize,
}

impl CountingStore {
    pub fn new(inner: Arc<dyn BlobStore>) -> Self {
        CountingStore {
            inner,
            calls: AtomicUsize::new(0),
        }
    }

    /// Calls so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Calls so far, and starts counting again from zero.
    pub fn take(&self) -> usize {
        self.calls.swap(0, Ordering::SeqCst)
    }

    fn count(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl BlobStore for CountingStore {
    async fn ensure_container(&self) -> Result<(), BlobError> {
        self.count();
        self.inner.ensure_container().await
    }

    async fn create(
        &self,
        name: &str,
        body: Vec<u8>,
        metadata: &Metadata,
    ) -> Result<ETag, BlobError> {
        self.count();
        self.inner.create(name, body, metadata).await
    }

    async fn replace(
        &self,
        name: &str,
        body: Vec<u8>,
        metadata: &Metadata,
        if_match: &ETag,
    ) -> Result<ETag, BlobError> {
        self.count();
        self.inner.replace(name, body, metadata, if_match).await
    }

    async fn read(&self, name: &str) -> Result<Option<chatops_shared::blob::Blob>, BlobError> {
        self.count();
        self.inner.read(name).await
    }

    async fn list(&self, prefix: &str, marker: Option<&str>) -> Result<ListPage, BlobError> {
        self.count();
        self.inner.list(prefix, marker).await
    }

    async fn create_append(&self, name: &str) -> Result<bool, BlobError> {
        self.count();
        self.inner.create_append(name).await
    }

    async fn append(&self, name: &str, block: Vec<u8>, position: u64) -> Result<(), BlobError> {
        self.count();
        self.inner.append(name, block, position).await
    }
}
