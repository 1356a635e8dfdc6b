//! An in-memory [`BlobStore`] for the audit tests, keeping the service's rules that matter here:
//! an append lands only at the blob's length (else `ConditionNotMet`), a blob takes at most
//! `max_blocks` appends (then 409 `BlockCountExceedsLimit`), `create_append` keeps an existing
//! blob. Faults can be queued for the next appends.

use crate::blob::{Blob, BlobError, BlobStore, ETag, ListPage, Listed, Metadata};
use async_trait::async_trait;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

/// What the next append does instead of succeeding.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Fails without writing.
    Unavailable,
    /// Writes, then the answer is lost (the caller sees a failure).
    AppliedAnswerLost,
}

#[derive(Default)]
struct Stored {
    body: Vec<u8>,
    blocks: u32,
    version: u64,
}

#[derive(Default)]
struct State {
    blobs: BTreeMap<String, Stored>,
    faults: VecDeque<Fault>,
    /// Reads answer 403, as for an identity that may only add.
    forbid_reads: bool,
    /// Creating a blob that exists answers 403 (an add-only identity may be refused it).
    forbid_create_existing: bool,
    /// Every append the service applied: (blob, lines in the block).
    appends: Vec<(String, usize)>,
}

pub struct MemoryStore {
    state: Mutex<State>,
    max_blocks: u32,
    page: usize,
}

impl MemoryStore {
    pub fn new() -> Self {
        MemoryStore::with_limits(50_000, 5000)
    }

    pub fn with_limits(max_blocks: u32, page: usize) -> Self {
        MemoryStore {
            state: Mutex::new(State::default()),
            max_blocks,
            page,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    pub fn fail_next(&self, faults: &[Fault]) {
        self.state().faults.extend(faults.iter().cloned());
    }

    pub fn forbid_create_existing(&self) {
        self.state().forbid_create_existing = true;
    }

    pub fn forbid_reads(&self) {
        self.state().forbid_reads = true;
    }

    pub fn faults_left(&self) -> usize {
        self.state().faults.len()
    }

    pub fn body(&self, name: &str) -> Option<Vec<u8>> {
        self.state().blobs.get(name).map(|b| b.body.clone())
    }

    pub fn put(&self, name: &str, body: Vec<u8>) {
        let mut state = self.state();
        let blob = state.blobs.entry(name.to_owned()).or_default();
        blob.body = body;
        blob.version += 1;
    }

    pub fn names(&self) -> Vec<String> {
        self.state().blobs.keys().cloned().collect()
    }

    pub fn appends(&self) -> Vec<(String, usize)> {
        self.state().appends.clone()
    }
}

fn etag(version: u64) -> ETag {
    ETag(format!("v{version}"))
}

#[async_trait]
impl BlobStore for MemoryStore {
    async fn ensure_container(&self) -> Result<(), BlobError> {
        Ok(())
    }

    async fn create(&self, name: &str, body: Vec<u8>, _: &Metadata) -> Result<ETag, BlobError> {
        let mut state = self.state();
        if state.blobs.contains_key(name) {
            return Err(BlobError::AlreadyExists);
        }
        state.blobs.insert(
            name.to_owned(),
            Stored {
                body,
                blocks: 0,
                version: 1,
            },
        );
        Ok(etag(1))
    }

    async fn replace(
        &self,
        name: &str,
        body: Vec<u8>,
        _: &Metadata,
        if_match: &ETag,
    ) -> Result<ETag, BlobError> {
        let mut state = self.state();
        match state.blobs.get_mut(name) {
            Some(blob) if etag(blob.version) == *if_match => {
                blob.body = body;
                blob.version += 1;
                Ok(etag(blob.version))
            }
            _ => Err(BlobError::ConditionNotMet),
        }
    }

    async fn read(&self, name: &str) -> Result<Option<Blob>, BlobError> {
        if self.state().forbid_reads {
            return Err(BlobError::Forbidden(
                "403 AuthorizationPermissionMismatch".to_owned(),
            ));
        }
        Ok(self.state().blobs.get(name).map(|b| Blob {
            body: b.body.clone(),
            etag: etag(b.version),
            metadata: Metadata::new(),
        }))
    }

    async fn list(&self, prefix: &str, marker: Option<&str>) -> Result<ListPage, BlobError> {
        let state = self.state();
        let mut names = state
            .blobs
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .filter(|(name, _)| marker.is_none_or(|m| name.as_str() >= m));
        let blobs: Vec<Listed> = names
            .by_ref()
            .take(self.page)
            .map(|(name, b)| Listed {
                name: name.clone(),
                etag: etag(b.version),
                metadata: Metadata::new(),
            })
            .collect();
        let next_marker = names.next().map(|(name, _)| name.clone());
        Ok(ListPage { blobs, next_marker })
    }

    async fn create_append(&self, name: &str) -> Result<bool, BlobError> {
        let mut state = self.state();
        if state.blobs.contains_key(name) {
            if state.forbid_create_existing {
                return Err(BlobError::Forbidden(
                    "403 AuthorizationPermissionMismatch".into(),
                ));
            }
            return Ok(false);
        }
        state.blobs.insert(name.to_owned(), Stored::default());
        Ok(true)
    }

    async fn append(&self, name: &str, block: Vec<u8>, position: u64) -> Result<(), BlobError> {
        let mut state = self.state();
        let fault = state.faults.pop_front();
        if let Some(Fault::Unavailable) = fault {
            return Err(BlobError::Unavailable("503 ServerBusy".to_owned()));
        }
        let max_blocks = self.max_blocks;
        let Some(blob) = state.blobs.get_mut(name) else {
            return Err(BlobError::Other("404 BlobNotFound".to_owned()));
        };
        if blob.body.len() as u64 != position {
            return Err(BlobError::ConditionNotMet);
        }
        if blob.blocks >= max_blocks {
            return Err(BlobError::Other(
                "409 BlockCountExceedsLimit: the committed block count cannot exceed the maximum limit of 50,000 blocks".to_owned(),
            ));
        }
        let lines = block.iter().filter(|b| **b == b'\n').count();
        blob.body.extend_from_slice(&block);
        blob.blocks += 1;
        blob.version += 1;
        state.appends.push((name.to_owned(), lines));
        match fault {
            Some(Fault::AppliedAnswerLost) => Err(BlobError::Unavailable(
                "timed out waiting for the answer".to_owned(),
            )),
            _ => Ok(()),
        }
    }
}
