//! The background task that writes audit lines: it takes what waits (up to [`MAX_TAKE`] lines of
//! one day), stamps each line with its `seq` and `prev`, and appends them as one block at the
//! position it knows the blob ends at. It retries forever, in order:
//!
//! - a failure of the service: backoff, an error log once it has lasted
//!   [`WriterSettings::alarm_after`] attempts (then every 50), an info log when it recovers;
//! - `ConditionNotMet` (the blob is not where we thought): re-read the blob; when its last line is
//!   the one we tried to write, the append was applied and only its answer was lost; otherwise
//!   go on from the blob's real end;
//! - `BlockCountExceedsLimit` (50,000 appends): go on in the next part, `<writer>.2.jsonl`, …;
//! - a blob whose end it may not read (the ingress may only add) or cannot parse: the next part.

use super::line::{self, GENESIS, Stamp};
use super::naming::blob_name;
use super::pending::{Entry, Pending, Taken};
use crate::backoff::Backoff;
use crate::blob::{BlobError, BlobStore};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use time::Date;

/// Lines taken from the queue at once (written in as many blocks as their size needs).
pub const MAX_TAKE: usize = 1000;

/// How the writer behaves; [`Default`] is what the services use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterSettings {
    /// Lines kept waiting at most; beyond, the oldest are dropped (and the loss logged).
    pub max_waiting: usize,
    /// Bytes of one append block at most (the service takes up to 100 MiB, 4 MiB since ever).
    pub max_block: usize,
    /// Waits between attempts while storage fails.
    pub backoff: Backoff,
    /// Failed attempts in a row after which an error is logged.
    pub alarm_after: u32,
    /// Shortest time between the starts of two appends: lines that come meanwhile wait and go
    /// in the next append together. Under load this turns one append per command into a few
    /// per second, which the queue (often on the same storage account) no longer competes
    /// with; a closing log does not wait for it.
    pub min_interval: Duration,
}

impl Default for WriterSettings {
    fn default() -> Self {
        WriterSettings {
            max_waiting: 100_000,
            max_block: 4 * 1024 * 1024,
            backoff: Backoff {
                first: Duration::from_millis(500),
                max: Duration::from_secs(30),
                jitter: true,
            },
            alarm_after: 5,
            min_interval: Duration::from_millis(250),
        }
    }
}

/// Where the writer appends: one blob and what it knows of its end.
#[derive(Debug)]
struct Cursor {
    day: Date,
    part: u32,
    name: String,
    /// False until `create_append` answered for this blob (or after an unexplained failure,
    /// so that the next attempt re-reads the blob's end).
    known: bool,
    /// The blob's length.
    position: u64,
    /// `seq` of its last line (0 when empty).
    seq: u64,
    /// Hash of its last line ([`GENESIS`] when empty).
    prev: String,
}

impl Cursor {
    fn new(writer: &str, day: Date, part: u32) -> Self {
        Cursor {
            day,
            part,
            name: blob_name(day, writer, part),
            known: false,
            position: 0,
            seq: 0,
            prev: GENESIS.to_owned(),
        }
    }
}

/// One append: lines `0..count` of what was taken, serialised after the cursor.
struct Block {
    bytes: Vec<u8>,
    count: usize,
    last_line: Vec<u8>,
    last_seq: u64,
}

/// What one attempt came to.
enum Attempt {
    /// `count` lines are in the blob.
    Written(usize),
    /// The cursor moved (next part, or the blob's real end): try again at once.
    Again,
}

pub struct Writer {
    pub store: Arc<dyn BlobStore>,
    pub writer: String,
    pub pending: Arc<Pending>,
    pub settings: WriterSettings,
    cursor: Option<Cursor>,
}

impl Writer {
    pub fn new(
        store: Arc<dyn BlobStore>,
        writer: String,
        pending: Arc<Pending>,
        settings: WriterSettings,
    ) -> Self {
        Writer {
            store,
            writer,
            pending,
            settings,
            cursor: None,
        }
    }

    /// Writes lines as they come until the queue is closed and empty.
    pub async fn run(mut self) {
        loop {
            match self.pending.take(MAX_TAKE).await {
                Taken::Finished => return,
                Taken::Lines { lines, dropped } => {
                    let began = tokio::time::Instant::now();
                    if dropped > 0 {
                        tracing::error!(
                            lost = dropped,
                            limit = self.settings.max_waiting,
                            "audit lines lost: more were waiting than the limit while audit storage failed; the oldest were dropped"
                        );
                    }
                    self.write(&lines).await;
                    self.pending.in_flight.store(0, Ordering::SeqCst);
                    self.pending
                        .closed_or(began + self.settings.min_interval)
                        .await;
                }
            }
        }
    }

    async fn write(&mut self, lines: &[Entry]) {
        let mut rest = lines;
        while let Some(first) = rest.first() {
            let day = first.at.date();
            if self.cursor.as_ref().is_none_or(|c| day > c.day) {
                self.cursor = Some(Cursor::new(&self.writer, day, 1));
            }
            let written = self.append_retrying(rest).await;
            rest = rest.get(written..).unwrap_or_default();
            self.pending.in_flight.store(rest.len(), Ordering::SeqCst);
        }
    }

    /// Appends a first part of `lines` (at least one line), however long storage fails.
    async fn append_retrying(&mut self, lines: &[Entry]) -> usize {
        let mut failures: u32 = 0;
        loop {
            match self.attempt(lines).await {
                Ok(Attempt::Written(count)) => {
                    if failures >= self.settings.alarm_after {
                        tracing::info!(failures, "audit lines are written again");
                    }
                    return count;
                }
                Ok(Attempt::Again) => continue,
                Err(error) => {
                    failures = failures.saturating_add(1);
                    let blob = self.cursor.as_ref().map(|c| c.name.clone());
                    let waiting = self.pending.waiting() + lines.len();
                    if failures == self.settings.alarm_after
                        || (failures > self.settings.alarm_after && failures.is_multiple_of(50))
                    {
                        tracing::error!(
                            failures, waiting, blob, error = %error,
                            "audit lines cannot be written; retrying (lines wait in memory and are lost if the process stops)"
                        );
                    } else {
                        tracing::warn!(failures, blob, error = %error, "audit append failed; retrying");
                    }
                    tokio::time::sleep(self.settings.backoff.wait(failures - 1)).await;
                }
            }
        }
    }

    async fn attempt(&mut self, lines: &[Entry]) -> Result<Attempt, BlobError> {
        let Some(cursor) = self.cursor.as_mut() else {
            return Ok(Attempt::Again);
        };
        if !cursor.known {
            let created = match self.store.create_append(&cursor.name).await {
                Ok(created) => created,
                // An identity that may only add can be refused the create of a blob that
                // exists (a create whose answer was lost): go on in a new part.
                // (Returned as an error, so that an identity that may not create at all is
                // retried with backoff, not in a loop.)
                Err(error @ BlobError::Forbidden(_)) => {
                    let next = Cursor::new(&self.writer, cursor.day, cursor.part + 1);
                    tracing::warn!(blob = %cursor.name, next = %next.name, "may not create the audit blob; trying the next part");
                    *cursor = next;
                    return Err(error);
                }
                Err(e) => return Err(e),
            };
            if created {
                *cursor = Cursor::new(&self.writer, cursor.day, cursor.part);
                cursor.known = true;
            } else {
                // Ours from an attempt whose answer was lost, or written before: read its end.
                let Some(body) = self.read_body().await? else {
                    return Ok(Attempt::Again);
                };
                if let Some(cursor) = self.cursor.as_mut() {
                    adopt_end(cursor, &self.writer, &body);
                }
            }
            return Ok(Attempt::Again);
        }
        let Some(block) = build(cursor, &self.writer, lines, self.settings.max_block) else {
            tracing::error!(
                blob = %cursor.name,
                "an audit line larger than an append block was dropped"
            );
            return Ok(Attempt::Written(1));
        };
        match self
            .store
            .append(&cursor.name, block.bytes.clone(), cursor.position)
            .await
        {
            Ok(()) => {
                cursor.position += block.bytes.len() as u64;
                cursor.seq = block.last_seq;
                cursor.prev = line::hash(&block.last_line);
                Ok(Attempt::Written(block.count))
            }
            Err(BlobError::ConditionNotMet) => {
                let Some(body) = self.read_body().await? else {
                    return Ok(Attempt::Again);
                };
                let ours = line::last_line(&body)
                    .is_some_and(|(last, terminated)| terminated && last == block.last_line);
                let Some(cursor) = self.cursor.as_mut() else {
                    return Ok(Attempt::Again);
                };
                if !adopt_end(cursor, &self.writer, &body) {
                    return Ok(Attempt::Again);
                }
                if ours {
                    tracing::info!("an audit append whose answer was lost had been applied");
                    return Ok(Attempt::Written(block.count));
                }
                tracing::warn!("the audit blob did not end where expected; continuing at its end");
                Ok(Attempt::Again)
            }
            Err(BlobError::Other(text)) if text.contains("BlockCountExceedsLimit") => {
                let next = Cursor::new(&self.writer, cursor.day, cursor.part + 1);
                tracing::info!(full = %cursor.name, next = %next.name, "audit blob full; continuing in the next part");
                *cursor = next;
                Ok(Attempt::Again)
            }
            Err(error) => {
                if !error.is_transient() {
                    // Re-read the blob's end before the next attempt (it may be gone or changed).
                    cursor.known = false;
                }
                Err(error)
            }
        }
    }

    /// The body of the cursor's blob; an error (and a re-check next time) when it is gone.
    /// `None` when this identity may not read it (the ingress may only add to the container):
    /// the cursor then moves to the next part, a new blob whose end is known, and the lines
    /// are written there (if the last append was applied after all, they are in both).
    async fn read_body(&mut self) -> Result<Option<Vec<u8>>, BlobError> {
        let Some(cursor) = self.cursor.as_mut() else {
            return Ok(None);
        };
        match self.store.read(&cursor.name).await {
            Ok(Some(blob)) => Ok(Some(blob.body)),
            Ok(None) => {
                cursor.known = false;
                Err(BlobError::Other(format!(
                    "the audit blob {} is missing",
                    cursor.name
                )))
            }
            Err(BlobError::Forbidden(_)) => {
                let next = Cursor::new(&self.writer, cursor.day, cursor.part + 1);
                tracing::warn!(
                    blob = %cursor.name, next = %next.name,
                    "may not read the audit blob to find its end; continuing in the next part"
                );
                *cursor = next;
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }
}

/// Sets the cursor at the end of `body`, its blob's content. When the last line cannot be read
/// (cut off, or not an audit line), moves to the next part instead and returns false.
fn adopt_end(cursor: &mut Cursor, writer: &str, body: &[u8]) -> bool {
    match line::last_line(body) {
        None => {
            *cursor = Cursor::new(writer, cursor.day, cursor.part);
            cursor.known = true;
            true
        }
        Some((last, true)) if line::decode_stamp(last).is_ok() => {
            cursor.position = body.len() as u64;
            cursor.seq = line::decode_stamp(last).map_or(0, |s| s.seq);
            cursor.prev = line::hash(last);
            cursor.known = true;
            true
        }
        Some(_) => {
            let next = Cursor::new(writer, cursor.day, cursor.part + 1);
            tracing::error!(
                blob = %cursor.name, next = %next.name,
                "the audit blob ends with a line that cannot be read; continuing in the next part"
            );
            *cursor = next;
            false
        }
    }
}

/// Serialises the first lines of `lines` after `cursor` into one block of at most `max` bytes;
/// `None` when the first line alone is larger.
fn build(cursor: &Cursor, writer: &str, lines: &[Entry], max: usize) -> Option<Block> {
    let mut bytes = Vec::new();
    let mut prev = cursor.prev.clone();
    let mut seq = cursor.seq;
    let mut last_line = Vec::new();
    let mut count = 0;
    for entry in lines {
        let stamp = Stamp {
            seq: seq + 1,
            prev,
            at: entry.at,
            writer: writer.to_owned(),
        };
        let encoded = line::encode(&stamp, &entry.event);
        if bytes.len() + encoded.len() + 1 > max {
            break;
        }
        bytes.extend_from_slice(&encoded);
        bytes.push(b'\n');
        prev = line::hash(&encoded);
        seq += 1;
        count += 1;
        last_line = encoded;
    }
    (count > 0).then_some(Block {
        bytes,
        count,
        last_line,
        last_seq: seq,
    })
}
