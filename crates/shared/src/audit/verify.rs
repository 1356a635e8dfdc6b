//! Checking audit blobs: every line reads, `seq` counts 1, 2, … and each `prev` is the hash of
//! the line before it, and the blob ends with a newline. What that proves and does not is in
//! `docs/audit.md`: an edit, removal or reordering in the middle of a blob, or a torn end, shows;
//! a consistent rewrite of a whole blob, or its tail cut at a line boundary, does not.

use super::line::{self, GENESIS};
use super::naming::{blob_day, parse_name};
use crate::blob::{BlobError, BlobStore};
use std::collections::BTreeMap;
use time::{Date, OffsetDateTime};

/// The first thing wrong in a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line number.
    pub line: u64,
    /// What is wrong, naming the line(s).
    pub what: String,
}

/// What was read in one blob.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BlobReport {
    pub name: String,
    /// Complete lines (ended by a newline) in the blob.
    pub lines: u64,
    /// `at` of the first and last lines that read.
    pub first_at: Option<OffsetDateTime>,
    pub last_at: Option<OffsetDateTime>,
    /// Lines per `writer`.
    pub writers: BTreeMap<String, u64>,
    pub problem: Option<Problem>,
}

/// Checks one blob's content.
pub fn check_blob(name: &str, body: &[u8]) -> BlobReport {
    let mut report = BlobReport {
        name: name.to_owned(),
        ..BlobReport::default()
    };
    let mut problem = None;
    let mut note = |line: u64, what: String| {
        if problem.is_none() {
            problem = Some(Problem { line, what });
        }
    };
    let (complete, tail) = match body.iter().rposition(|b| *b == b'\n') {
        Some(end) => (&body[..end], &body[end + 1..]),
        None => (&body[..0], body),
    };
    let mut previous: Option<(u64, String)> = None;
    if !complete.is_empty() || body.first() == Some(&b'\n') {
        for (index, text) in complete.split(|b| *b == b'\n').enumerate() {
            let n = index as u64 + 1;
            report.lines = n;
            let Ok(stamp) = line::decode_stamp(text) else {
                note(
                    n,
                    format!("line {n} cannot be read as an audit line: it was edited or corrupted"),
                );
                previous = None;
                continue;
            };
            report.first_at.get_or_insert(stamp.at);
            report.last_at = Some(stamp.at);
            *report.writers.entry(stamp.writer.clone()).or_default() += 1;
            match &previous {
                None if n == 1 => {
                    if stamp.seq != 1 {
                        note(
                            n,
                            format!(
                                "line 1 has seq {}, not 1: lines before it were removed",
                                stamp.seq
                            ),
                        );
                    } else if stamp.prev != GENESIS {
                        note(n, "line 1's prev is not 64 zeros: line 1 was edited or lines before it were removed".to_owned());
                    }
                }
                None => {}
                Some((seq, hash)) => {
                    if stamp.seq != seq + 1 {
                        note(
                            n,
                            format!(
                                "line {n} has seq {} after seq {seq}: lines were removed, repeated or reordered",
                                stamp.seq
                            ),
                        );
                    } else if stamp.prev != *hash {
                        note(
                            n,
                            format!(
                                "line {n}'s prev does not match line {}: line {} was edited, or lines between them were removed",
                                n - 1,
                                n - 1
                            ),
                        );
                    }
                }
            }
            previous = Some((stamp.seq, line::hash(text)));
        }
    }
    if !tail.is_empty() {
        let n = report.lines + 1;
        note(
            n,
            format!("line {n} is cut off: the blob does not end with a newline"),
        );
    }
    report.problem = problem;
    report
}

/// Every audit blob's name whose day is at least `since`, by day and writer, a writer's parts
/// in number order (`w.jsonl`, `w.2.jsonl`, …, `w.10.jsonl`: not the listing's text order).
pub async fn list_blobs(
    store: &dyn BlobStore,
    since: Option<Date>,
) -> Result<Vec<String>, BlobError> {
    let mut names = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = store.list("", marker.as_deref()).await?;
        names.extend(page.blobs.into_iter().map(|b| b.name).filter(|name| {
            blob_day(name).is_some_and(|day| since.is_none_or(|since| day >= since))
        }));
        match page.next_marker {
            Some(next) if !next.is_empty() => marker = Some(next),
            _ => break,
        }
    }
    names.sort_by(|a, b| parse_name(a).cmp(&parse_name(b)).then_with(|| a.cmp(b)));
    Ok(names)
}

/// Reads and checks every audit blob of the days from `since` (all when `None`).
pub async fn verify(
    store: &dyn BlobStore,
    since: Option<Date>,
) -> Result<Vec<BlobReport>, BlobError> {
    let mut reports = Vec::new();
    for name in list_blobs(store, since).await? {
        // Listed, then gone (a lifecycle rule): nothing to check.
        if let Some(blob) = store.read(&name).await? {
            reports.push(check_blob(&name, &blob.body));
        }
    }
    Ok(reports)
}
