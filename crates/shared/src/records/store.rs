//! [`Records`]: the job-record operations on the records container.

use super::model::{JobRecord, Summary};
use super::{RECORDS_PREFIX, day_prefix, record_name_of};
use crate::blob::{BlobError, BlobStore, ETag};
use crate::job::JobMessage;
use futures::future::join_all;
use std::sync::Arc;
use time::{Date, OffsetDateTime};

/// How many times [`Records::update`] re-reads and re-applies a change that lost a race.
const UPDATE_ATTEMPTS: usize = 20;
/// Days listed at once by [`Records::find`] once the two newest came back empty.
const FIND_BATCH: usize = 16;

/// Why a records operation failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RecordsError {
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// A record that is not JSON this build reads (named, never quoted).
    #[error("the record {name} cannot be read: {reason}")]
    Unreadable { name: String, reason: String },
    /// A conditional write lost: the record changed since it was read.
    #[error("the record {0} changed since it was read")]
    Conflict(String),
}

impl RecordsError {
    /// Worth trying again later.
    pub fn is_transient(&self) -> bool {
        match self {
            RecordsError::Blob(e) => e.is_transient(),
            RecordsError::Conflict(_) => true,
            RecordsError::Unreadable { .. } => false,
        }
    }
}

/// A record as read, with the version a conditional write must name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub name: String,
    pub etag: ETag,
    pub record: JobRecord,
}

/// What [`Records::claim`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This call created the record: the caller owns the job.
    Created(Versioned),
    /// The record existed already (made by this caller earlier, or by anyone else).
    Exists(Versioned),
}

/// The records container. Cheap to clone.
#[derive(Clone)]
pub struct Records {
    store: Arc<dyn BlobStore>,
    retention_days: u16,
}

impl Records {
    /// `retention_days`: how far back `find` looks (older records are deleted by the
    /// deployment's lifecycle rule).
    pub fn new(store: Arc<dyn BlobStore>, retention_days: u16) -> Self {
        Records {
            store,
            retention_days: retention_days.max(1),
        }
    }

    pub fn retention_days(&self) -> u16 {
        self.retention_days
    }

    /// Creates the container if missing.
    pub async fn ensure_exists(&self) -> Result<(), RecordsError> {
        Ok(self.store.ensure_container().await?)
    }

    /// Creates the record of `job` unless it exists (`If-None-Match: *`): exactly one caller
    /// gets [`Claim::Created`] for a job. A create whose answer was lost comes back as
    /// `Exists` with the caller's own record: compare its holder.
    /// `dead_after` is how old the runner's heartbeat may grow before it counts as dead (see
    /// [`Holder::dead_after_ms`](super::Holder)).
    pub async fn claim(
        &self,
        job: &JobMessage,
        runner: &str,
        now: OffsetDateTime,
        dead_after: std::time::Duration,
    ) -> Result<Claim, RecordsError> {
        let name = record_name_of(job);
        let mut record = JobRecord::new(job, runner, now);
        record.holder = Some(super::Holder::new(runner, now, dead_after));
        match self
            .store
            .create(&name, to_json(&record), &record.metadata())
            .await
        {
            Ok(etag) => Ok(Claim::Created(Versioned { name, etag, record })),
            Err(BlobError::AlreadyExists | BlobError::ConditionNotMet) => {
                match self.read(&name).await? {
                    Some(existing) => Ok(Claim::Exists(existing)),
                    // Deleted in between (retention): nothing to own; try again later.
                    None => Err(RecordsError::Conflict(name)),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Reads a record by blob name.
    pub async fn read(&self, name: &str) -> Result<Option<Versioned>, RecordsError> {
        let Some(blob) = self.store.read(name).await? else {
            return Ok(None);
        };
        let record = serde_json::from_slice(&blob.body).map_err(|e| RecordsError::Unreadable {
            name: name.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Some(Versioned {
            name: name.to_owned(),
            etag: blob.etag,
            record,
        }))
    }

    /// Writes `record` over `current`, only if it did not change since it was read.
    pub async fn replace(
        &self,
        current: &Versioned,
        record: JobRecord,
    ) -> Result<Versioned, RecordsError> {
        match self
            .store
            .replace(
                &current.name,
                to_json(&record),
                &record.metadata(),
                &current.etag,
            )
            .await
        {
            Ok(etag) => Ok(Versioned {
                name: current.name.clone(),
                etag,
                record,
            }),
            Err(BlobError::ConditionNotMet) => Err(RecordsError::Conflict(current.name.clone())),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads the record, applies `change`, and writes it back conditionally, again from a fresh
    /// read when another writer came first. `change` returns false to leave the record as it
    /// is. `None` when there is no such record. `change` may run more than once: it must give
    /// the same result when applied to a record it changed already (a write whose answer was
    /// lost is re-read and applied again).
    pub async fn update(
        &self,
        name: &str,
        mut change: impl FnMut(&mut JobRecord) -> bool,
    ) -> Result<Option<Versioned>, RecordsError> {
        for _ in 0..UPDATE_ATTEMPTS {
            let Some(current) = self.read(name).await? else {
                return Ok(None);
            };
            let mut record = current.record.clone();
            if !change(&mut record) {
                return Ok(Some(current));
            }
            match self.replace(&current, record).await {
                Ok(written) => return Ok(Some(written)),
                Err(RecordsError::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(RecordsError::Conflict(name.to_owned()))
    }

    /// Starts keeping the whole output of the job recorded under `record_name` (an empty
    /// append blob at [`output_name`]); true when this call created it.
    pub async fn create_output(&self, record_name: &str) -> Result<bool, RecordsError> {
        Ok(self.store.create_append(&output_name(record_name)).await?)
    }

    /// Appends `bytes` to the kept output at `position` (its length so far). An append whose
    /// answer was lost (a timeout; or its retry, refused as the blob is past `position`) counts
    /// as done when the output now ends with `bytes` at `position`: keeping goes on instead of
    /// stopping with no note of it.
    pub async fn append_output(
        &self,
        record_name: &str,
        bytes: Vec<u8>,
        position: u64,
    ) -> Result<(), RecordsError> {
        let name = output_name(record_name);
        let len = bytes.len();
        let Err(e) = self.store.append(&name, bytes.clone(), position).await else {
            return Ok(());
        };
        // Only an answer that may hide an applied append is worth a read of the output.
        if !(e.is_transient() || matches!(e, BlobError::ConditionNotMet)) {
            return Err(e.into());
        }
        let landed = match self.store.read(&name).await {
            Ok(Some(blob)) => {
                u64::try_from(blob.body.len()).ok() == position.checked_add(len as u64)
                    && blob.body.ends_with(&bytes)
            }
            _ => false,
        };
        if landed {
            tracing::info!("an output append whose answer was lost had been applied");
            return Ok(());
        }
        Err(e.into())
    }

    /// The kept output of the job recorded under `record_name`; `None` when none was kept.
    pub async fn read_output(&self, record_name: &str) -> Result<Option<Vec<u8>>, RecordsError> {
        Ok(self
            .store
            .read(&output_name(record_name))
            .await?
            .map(|blob| blob.body))
    }

    /// Every record of one day, from the listing alone (one request per 5000 records).
    pub async fn list_day(&self, day: Date) -> Result<Vec<Summary>, RecordsError> {
        self.list_prefix(&day_prefix(day)).await
    }

    /// The records whose job id starts with `id_prefix` (lower-case hex with dashes, as
    /// printed), looking back from `today` over the retention: the two newest days one by one,
    /// then [`FIND_BATCH`] days at a time, stopping at the first day with a match.
    pub async fn find(&self, id_prefix: &str, today: Date) -> Result<Vec<Summary>, RecordsError> {
        self.find_where(id_prefix, today, |_| true).await
    }

    /// [`Records::find`] among the records `keep` accepts: days whose matches `keep` refuses
    /// do not end the search (so a caller's own older job is found behind someone else's newer
    /// one with the same prefix, and a job the caller may not see costs the same search as no
    /// job at all).
    pub async fn find_where(
        &self,
        id_prefix: &str,
        today: Date,
        keep: impl Fn(&Summary) -> bool,
    ) -> Result<Vec<Summary>, RecordsError> {
        let days = self.days_back(today);
        let (newest, older) = days.split_at(days.len().min(2));
        for day in newest {
            let mut found = self
                .list_prefix(&format!("{}{id_prefix}", day_prefix(*day)))
                .await?;
            found.retain(&keep);
            if !found.is_empty() {
                return Ok(found);
            }
        }
        for batch in older.chunks(FIND_BATCH) {
            let lists = batch.iter().map(|day| {
                let prefix = format!("{}{id_prefix}", day_prefix(*day));
                async move { self.list_prefix(&prefix).await }
            });
            let mut found = Vec::new();
            for list in join_all(lists).await {
                found.extend(list?.into_iter().filter(&keep));
            }
            if !found.is_empty() {
                return Ok(found);
            }
        }
        Ok(Vec::new())
    }

    /// Every record of the given days, from their listings, one request per day (per 5000
    /// records) made at once. In the order of `days`, each day's records in name order.
    pub async fn list_days(&self, days: &[Date]) -> Result<Vec<Summary>, RecordsError> {
        let lists = days.iter().map(|day| self.list_day(*day));
        let mut found = Vec::new();
        for list in join_all(lists).await {
            found.extend(list?);
        }
        Ok(found)
    }

    /// The newest records that `keep` accepts, at least `want` of them when the retention
    /// holds that many, looking back from `today` one day at a time (the two newest days), then
    /// [`FIND_BATCH`] days at once, and stopping after the day that made `want`. Newest first
    /// ([`Summary::requested_at`]); all the kept records of the days listed, so possibly more
    /// than `want`.
    pub async fn recent(
        &self,
        today: Date,
        want: usize,
        keep: impl Fn(&Summary) -> bool,
    ) -> Result<Vec<Summary>, RecordsError> {
        let days = self.days_back(today);
        let (newest, older) = days.split_at(days.len().min(2));
        let mut found = Vec::new();
        for batch in newest.chunks(1).chain(older.chunks(FIND_BATCH)) {
            if found.len() >= want {
                break;
            }
            found.extend(self.list_days(batch).await?.into_iter().filter(&keep));
        }
        newest_first(&mut found);
        Ok(found)
    }

    /// `today` and the days before it, over the retention.
    fn days_back(&self, today: Date) -> Vec<Date> {
        (0..self.retention_days)
            .filter_map(|back| today.checked_sub(time::Duration::days(i64::from(back))))
            .collect()
    }

    async fn list_prefix(&self, prefix: &str) -> Result<Vec<Summary>, RecordsError> {
        debug_assert!(prefix.starts_with(RECORDS_PREFIX));
        let mut summaries = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self.store.list(prefix, marker.as_deref()).await?;
            summaries.extend(page.blobs.iter().filter_map(Summary::from_listed));
            match page.next_marker {
                Some(next) if !next.is_empty() => marker = Some(next),
                _ => return Ok(summaries),
            }
        }
    }
}

/// Sorts summaries newest request first (ties by job id, so the order is stable).
pub fn newest_first(summaries: &mut [Summary]) {
    summaries.sort_by(|a, b| {
        b.requested_at
            .cmp(&a.requested_at)
            .then_with(|| a.job_id.cmp(&b.job_id))
    });
}

fn to_json(record: &JobRecord) -> Vec<u8> {
    // A record is plain strings, maps and timestamps: serializing cannot fail.
    serde_json::to_vec(record).unwrap_or_default()
}

/// Where the whole output of a job is kept, next to its record and outside the records'
/// listing: `jobs/2026-11-28/<id>.json` keeps it in `output/2026-11-28/<id>.txt`.
pub fn output_name(record_name: &str) -> String {
    let base = record_name
        .strip_prefix(RECORDS_PREFIX)
        .unwrap_or(record_name);
    let base = base.strip_suffix(".json").unwrap_or(base);
    format!("output/{base}.txt")
}
