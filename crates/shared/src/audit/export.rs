//! Export for a SIEM: the lines whose `at` is in `[since, until)`, exactly as stored (so their
//! chain can still be checked), blob by blob in name order, each blob's lines in written order.

use super::line;
use super::naming::blob_day;
use super::verify::list_blobs;
use crate::blob::{BlobError, BlobStore};
use std::io::Write;
use time::{Date, Time};

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error("cannot write the export: {0}")]
    Write(#[from] std::io::Error),
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Exported {
    pub blobs: usize,
    pub lines: u64,
    /// Lines left out because they could not be read (`audit verify` names them).
    pub unreadable: u64,
}

/// Writes to `out` every line with `since <= at < until` (UTC days).
pub async fn export(
    store: &dyn BlobStore,
    since: Date,
    until: Date,
    out: &mut dyn Write,
) -> Result<Exported, ExportError> {
    let start = since.with_time(Time::MIDNIGHT).assume_utc();
    let end = until.with_time(Time::MIDNIGHT).assume_utc();
    let mut exported = Exported::default();
    // A blob holds lines of its day, or earlier (after a clock step back), or the first ones of
    // the next day: a batch is written to the blob of its first line's day, and a batch (or the
    // lines that waited through a storage outage) can cross midnight. So the day before `since`
    // is read too, and every line is judged by its own `at`.
    let first = since.previous_day().unwrap_or(since);
    for name in list_blobs(store, Some(first)).await? {
        if blob_day(&name).is_none_or(|day| day > until) {
            continue;
        }
        let Some(blob) = store.read(&name).await? else {
            continue;
        };
        // An unreadable line of a blob of the day before `since` is that day's, most likely:
        // not counted against this export.
        let earlier = blob_day(&name).is_some_and(|day| day < since);
        let mut any = false;
        for text in blob.body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            match line::decode_stamp(text) {
                Ok(stamp) if stamp.at >= start && stamp.at < end => {
                    out.write_all(text)?;
                    out.write_all(b"\n")?;
                    exported.lines += 1;
                    any = true;
                }
                Ok(_) => {}
                Err(_) if !earlier => exported.unreadable += 1,
                Err(_) => {}
            }
        }
        if any {
            exported.blobs += 1;
        }
    }
    out.flush()?;
    Ok(exported)
}
