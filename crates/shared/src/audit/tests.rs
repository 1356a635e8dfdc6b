//! The writer and `verify` against the in-memory store ([`super::memory`]).

use super::line::{self, GENESIS, Stamp};
use super::memory::{Fault, MemoryStore};
use super::verify::{BlobReport, check_blob, verify};
use super::{AuditEvent, AuditLog, AuditWriter, WriterSettings};
use crate::backoff::Backoff;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use time::macros::{date, datetime};
use uuid::Uuid;

const WRITER: &str = "host-1-ab12";
const DAY1: OffsetDateTime = datetime!(2026-11-28 23:59:58 UTC);
const DAY2: OffsetDateTime = datetime!(2026-11-29 00:00:01 UTC);
const BLOB1: &str = "2026-11-28/host-1-ab12.jsonl";

fn event(n: u128) -> AuditEvent {
    AuditEvent::Started {
        job_id: Uuid::from_u128(n),
        runner: "r1".to_owned(),
    }
}

fn settings() -> WriterSettings {
    WriterSettings {
        backoff: Backoff {
            first: Duration::from_millis(1),
            max: Duration::from_millis(2),
            jitter: false,
        },
        min_interval: Duration::ZERO,
        ..WriterSettings::default()
    }
}

fn start(store: &Arc<MemoryStore>, settings: WriterSettings) -> (AuditLog, AuditWriter) {
    AuditLog::with_settings(store.clone(), WRITER.to_owned(), settings)
}

/// The job ids of a blob's lines, in order.
fn job_ids(store: &MemoryStore, name: &str) -> Vec<u128> {
    let body = store.body(name).unwrap_or_default();
    body.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| match serde_json::from_slice::<AuditEvent>(l).unwrap() {
            AuditEvent::Started { job_id, .. } => job_id.as_u128(),
            other => panic!("{other:?}"),
        })
        .collect()
}

fn checked(store: &MemoryStore, name: &str) -> BlobReport {
    let report = check_blob(name, &store.body(name).unwrap());
    assert_eq!(report.problem, None, "{name}");
    report
}

/// Lets the writer task run until `done` holds (a bounded number of turns, no clock).
async fn until(mut done: impl FnMut() -> bool) {
    for _ in 0..100_000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the writer did not get there");
}

#[tokio::test]
async fn waiting_lines_go_in_one_append_in_order_and_chain() {
    let store = Arc::new(MemoryStore::new());
    let (log, writer) = start(&store, settings());
    for n in 1..=5 {
        log.clone().record_at(DAY1, event(n));
    }
    assert_eq!(writer.shutdown(Duration::from_secs(5)).await, 0);
    assert_eq!(store.appends(), vec![(BLOB1.to_owned(), 5)]);
    assert_eq!(job_ids(&store, BLOB1), vec![1, 2, 3, 4, 5]);
    let report = checked(&store, BLOB1);
    assert_eq!(report.lines, 5);
    assert_eq!(report.writers.get(WRITER), Some(&5));
    assert_eq!(report.first_at, Some(DAY1));
}

#[tokio::test(start_paused = true)]
async fn lines_that_come_within_the_minimum_interval_go_in_one_append() {
    let store = Arc::new(MemoryStore::new());
    let (log, writer) = start(
        &store,
        WriterSettings {
            min_interval: Duration::from_millis(250),
            ..settings()
        },
    );
    log.clone().record_at(DAY1, event(1));
    until(|| store.appends().len() == 1).await;
    for n in 2..=4 {
        log.clone().record_at(DAY1, event(n));
        for _ in 0..1_000 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            store.appends().len(),
            1,
            "line {n} was appended within the interval"
        );
    }
    tokio::time::advance(Duration::from_millis(250)).await;
    until(|| store.appends().len() == 2).await;
    // Closing the log does not wait out the interval.
    log.clone().record_at(DAY1, event(5));
    let closing = tokio::time::Instant::now();
    assert_eq!(writer.shutdown(Duration::from_secs(5)).await, 0);
    assert!(closing.elapsed() < Duration::from_millis(250));
    assert_eq!(
        store.appends(),
        vec![
            (BLOB1.to_owned(), 1),
            (BLOB1.to_owned(), 3),
            (BLOB1.to_owned(), 1)
        ]
    );
    assert_eq!(job_ids(&store, BLOB1), vec![1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn blocks_stay_under_the_size_limit() {
    let store = Arc::new(MemoryStore::new());
    let one = line::encode(
        &Stamp {
            seq: 1,
            prev: GENESIS.to_owned(),
            at: DAY1,
            writer: WRITER.to_owned(),
        },
        &event(1),
    )
    .len()
        + 1;
    let max_block = one * 2 + 5;
    let (log, writer) = start(
        &store,
        WriterSettings {
            max_block,
            ..settings()
        },
    );
    for n in 1..=5 {
        log.record_at(DAY1, event(n));
    }
    writer.shutdown(Duration::from_secs(5)).await;
    let sizes: Vec<usize> = store.appends().iter().map(|(_, lines)| *lines).collect();
    assert_eq!(sizes, vec![2, 2, 1]);
    assert_eq!(job_ids(&store, BLOB1), vec![1, 2, 3, 4, 5]);
    checked(&store, BLOB1);
}

#[tokio::test]
async fn a_new_utc_day_starts_a_new_blob_and_chain() {
    let store = Arc::new(MemoryStore::new());
    let (log, writer) = start(&store, settings());
    log.record_at(DAY1, event(1));
    log.record_at(DAY1, event(2));
    log.record_at(DAY2, event(3));
    // A clock stepped back stays in the current blob.
    log.record_at(DAY1, event(4));
    writer.shutdown(Duration::from_secs(5)).await;
    let blob2 = "2026-11-29/host-1-ab12.jsonl";
    assert_eq!(store.names(), vec![BLOB1.to_owned(), blob2.to_owned()]);
    assert_eq!(job_ids(&store, BLOB1), vec![1, 2]);
    assert_eq!(job_ids(&store, blob2), vec![3, 4]);
    checked(&store, BLOB1);
    checked(&store, blob2);
}

#[tokio::test]
async fn an_append_whose_answer_was_lost_is_recognised_and_not_repeated() {
    let store = Arc::new(MemoryStore::new());
    store.fail_next(&[Fault::AppliedAnswerLost]);
    let (log, writer) = start(&store, settings());
    for n in 1..=3 {
        log.record_at(DAY1, event(n));
    }
    until(|| !store.appends().is_empty()).await;
    // The retry at the same position meets ConditionNotMet, reads the blob, finds its line.
    until(|| {
        log.pending
            .as_ref()
            .is_some_and(|p| p.in_flight.load(std::sync::atomic::Ordering::SeqCst) == 0)
    })
    .await;
    log.record_at(DAY1, event(4));
    writer.shutdown(Duration::from_secs(5)).await;
    assert_eq!(job_ids(&store, BLOB1), vec![1, 2, 3, 4]);
    assert_eq!(checked(&store, BLOB1).lines, 4);
}

#[tokio::test]
async fn a_writer_that_may_not_read_continues_in_the_next_part() {
    let store = Arc::new(MemoryStore::new());
    store.forbid_reads();
    store.fail_next(&[Fault::AppliedAnswerLost]);
    let (log, writer) = start(&store, settings());
    log.record_at(DAY1, event(1));
    log.record_at(DAY1, event(2));
    assert_eq!(writer.shutdown(Duration::from_secs(5)).await, 0);
    let part2 = "2026-11-28/host-1-ab12.2.jsonl";
    assert_eq!(job_ids(&store, BLOB1), vec![1, 2]);
    assert_eq!(
        job_ids(&store, part2),
        vec![1, 2],
        "written again, chain intact"
    );
    checked(&store, BLOB1);
    checked(&store, part2);
}

#[tokio::test]
async fn a_writer_refused_the_create_of_an_existing_blob_continues_in_the_next_part() {
    let store = Arc::new(MemoryStore::new());
    store.forbid_reads();
    store.forbid_create_existing();
    // Its first part exists already (a create whose answer was lost, with nothing in it yet).
    store.put(BLOB1, Vec::new());
    let (log, writer) = start(&store, settings());
    log.record_at(DAY1, event(1));
    log.record_at(DAY1, event(2));
    assert_eq!(writer.shutdown(Duration::from_secs(5)).await, 0);
    let part2 = "2026-11-28/host-1-ab12.2.jsonl";
    assert_eq!(job_ids(&store, part2), vec![1, 2]);
    checked(&store, part2);
}

#[tokio::test]
async fn lines_keep_their_order_across_transient_failures() {
    let store = Arc::new(MemoryStore::new());
    store.fail_next(&[Fault::Unavailable, Fault::Unavailable, Fault::Unavailable]);
    let (log, writer) = start(&store, settings());
    for n in 1..=3 {
        log.record_at(DAY1, event(n));
    }
    // While the first lines are being retried, more come.
    until(|| store.faults_left() < 3).await;
    for n in 4..=6 {
        log.record_at(DAY1, event(n));
    }
    assert_eq!(writer.shutdown(Duration::from_secs(5)).await, 0);
    assert_eq!(store.faults_left(), 0);
    assert_eq!(job_ids(&store, BLOB1), vec![1, 2, 3, 4, 5, 6]);
    checked(&store, BLOB1);
}

#[tokio::test]
async fn beyond_the_limit_the_oldest_waiting_lines_are_dropped() {
    let store = Arc::new(MemoryStore::new());
    let (log, writer) = start(
        &store,
        WriterSettings {
            max_waiting: 3,
            ..settings()
        },
    );
    for n in 1..=5 {
        log.record_at(DAY1, event(n));
    }
    writer.shutdown(Duration::from_secs(5)).await;
    assert_eq!(job_ids(&store, BLOB1), vec![3, 4, 5]);
    checked(&store, BLOB1);
}

#[tokio::test]
async fn a_full_blob_rolls_to_the_next_part() {
    let store = Arc::new(MemoryStore::with_limits(2, 5000));
    let (log, writer) = start(&store, settings());
    for n in 1..=5 {
        log.record_at(DAY1, event(n));
        // One append per line.
        until(|| store.appends().len() as u128 == n).await;
    }
    writer.shutdown(Duration::from_secs(5)).await;
    let parts = [
        BLOB1,
        "2026-11-28/host-1-ab12.2.jsonl",
        "2026-11-28/host-1-ab12.3.jsonl",
    ];
    let mut names = store.names();
    names.sort();
    let mut expected = parts.map(str::to_owned).to_vec();
    expected.sort();
    assert_eq!(names, expected);
    let listed = super::verify::list_blobs(store.as_ref(), None)
        .await
        .unwrap();
    assert_eq!(listed, parts.map(str::to_owned).to_vec(), "parts in order");
    assert_eq!(job_ids(&store, parts[0]), vec![1, 2]);
    assert_eq!(job_ids(&store, parts[1]), vec![3, 4]);
    assert_eq!(job_ids(&store, parts[2]), vec![5]);
    for part in parts {
        checked(&store, part);
    }
}

#[tokio::test]
async fn an_existing_blob_is_continued_and_a_torn_one_left_for_the_next_part() {
    let store = Arc::new(MemoryStore::new());
    let (log, writer) = start(&store, settings());
    log.record_at(DAY1, event(1));
    writer.shutdown(Duration::from_secs(5)).await;

    // Same writer id again (a restart): it continues the chain.
    let (log, writer) = start(&store, settings());
    log.record_at(DAY1, event(2));
    writer.shutdown(Duration::from_secs(5)).await;
    assert_eq!(job_ids(&store, BLOB1), vec![1, 2]);
    checked(&store, BLOB1);

    // A blob whose end is torn is not written after.
    let mut torn = store.body(BLOB1).unwrap();
    torn.truncate(torn.len() - 10);
    store.put(BLOB1, torn.clone());
    let (log, writer) = start(&store, settings());
    log.record_at(DAY1, event(3));
    writer.shutdown(Duration::from_secs(5)).await;
    assert_eq!(store.body(BLOB1).unwrap(), torn);
    assert_eq!(job_ids(&store, "2026-11-28/host-1-ab12.2.jsonl"), vec![3]);
}

#[tokio::test]
async fn shutdown_gives_up_in_time_and_counts_what_is_lost() {
    let store = Arc::new(MemoryStore::new());
    store.fail_next(&vec![Fault::Unavailable; 1000]);
    let (log, writer) = start(
        &store,
        WriterSettings {
            backoff: Backoff {
                first: Duration::from_millis(20),
                max: Duration::from_millis(20),
                jitter: false,
            },
            ..settings()
        },
    );
    for n in 1..=4 {
        log.record_at(DAY1, event(n));
    }
    assert_eq!(writer.shutdown(Duration::from_millis(100)).await, 4);
    assert_eq!(store.body(BLOB1).unwrap_or_default(), b"");
    // After shutdown, recording does not panic (the line is reported lost).
    log.record(event(5));
}

#[tokio::test]
async fn a_discarding_log_writes_nothing() {
    AuditLog::discard().record(event(1));
}

// ---- verify ----

/// A valid blob of `n` lines, as lines (without newlines).
fn chain(n: u64) -> Vec<Vec<u8>> {
    let mut prev = GENESIS.to_owned();
    (1..=n)
        .map(|seq| {
            let text = line::encode(
                &Stamp {
                    seq,
                    prev: prev.clone(),
                    at: DAY1 + time::Duration::seconds(seq as i64),
                    writer: WRITER.to_owned(),
                },
                &event(u128::from(seq)),
            );
            prev = line::hash(&text);
            text
        })
        .collect()
}

fn joined(lines: &[Vec<u8>]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|l| l.iter().copied().chain([b'\n']))
        .collect()
}

fn problem(body: &[u8]) -> (u64, String) {
    let p = check_blob(BLOB1, body).problem.expect("a problem");
    (p.line, p.what)
}

#[test]
fn an_intact_blob_verifies() {
    let report = check_blob(BLOB1, &joined(&chain(6)));
    assert_eq!(report.problem, None);
    assert_eq!(report.lines, 6);
    assert_eq!(report.first_at, Some(DAY1 + time::Duration::seconds(1)));
    assert_eq!(report.last_at, Some(DAY1 + time::Duration::seconds(6)));
    assert_eq!(
        check_blob(BLOB1, b"").problem,
        None,
        "created, nothing appended yet"
    );
}

#[test]
fn an_edited_line_breaks_the_chain_at_the_next_line() {
    let mut lines = chain(6);
    let text = String::from_utf8(lines[2].clone()).unwrap();
    lines[2] = text
        .replace("\"runner\":\"r1\"", "\"runner\":\"r2\"")
        .into_bytes();
    assert_eq!(
        problem(&joined(&lines)),
        (
            4,
            "line 4's prev does not match line 3: line 3 was edited, or lines between them were removed"
                .to_owned()
        )
    );
}

#[test]
fn a_removed_line_shows_as_a_seq_gap_or_a_broken_chain() {
    let mut lines = chain(6);
    lines.remove(2);
    assert_eq!(
        problem(&joined(&lines)),
        (
            3,
            "line 3 has seq 4 after seq 2: lines were removed, repeated or reordered".to_owned()
        )
    );
    // Removed and renumbered: the chain still shows it.
    let mut lines = chain(6);
    lines.remove(2);
    let text = String::from_utf8(lines[2].clone()).unwrap();
    lines[2] = text.replace("\"seq\":4", "\"seq\":3").into_bytes();
    assert_eq!(problem(&joined(&lines)).0, 3);
    assert!(
        problem(&joined(&lines))
            .1
            .contains("prev does not match line 2")
    );
    // The first line removed.
    let lines = chain(3);
    assert_eq!(
        problem(&joined(&lines[1..])),
        (
            1,
            "line 1 has seq 2, not 1: lines before it were removed".to_owned()
        )
    );
}

#[test]
fn reordered_lines_are_found() {
    let mut lines = chain(6);
    lines.swap(2, 3);
    assert_eq!(
        problem(&joined(&lines)),
        (
            3,
            "line 3 has seq 4 after seq 2: lines were removed, repeated or reordered".to_owned()
        )
    );
}

#[test]
fn a_cut_off_last_line_is_found() {
    let mut body = joined(&chain(6));
    body.truncate(body.len() - 7);
    assert_eq!(
        problem(&body),
        (
            6,
            "line 6 is cut off: the blob does not end with a newline".to_owned()
        )
    );
    assert_eq!(problem(b"{\"seq\":1").0, 1);
}

#[test]
fn a_seq_gap_with_an_intact_chain_is_found() {
    // A writer that skipped a number: prev matches, seq does not.
    let mut prev = GENESIS.to_owned();
    let mut lines = Vec::new();
    for seq in [1, 2, 4] {
        let text = line::encode(
            &Stamp {
                seq,
                prev: prev.clone(),
                at: DAY1,
                writer: WRITER.to_owned(),
            },
            &event(1),
        );
        prev = line::hash(&text);
        lines.push(text);
    }
    assert_eq!(
        problem(&joined(&lines)),
        (
            3,
            "line 3 has seq 4 after seq 2: lines were removed, repeated or reordered".to_owned()
        )
    );
}

#[test]
fn a_line_that_is_not_json_is_found() {
    let mut lines = chain(3);
    lines[1] = b"not json".to_vec();
    assert_eq!(problem(&joined(&lines)).0, 2);
    let mut lines = chain(3);
    lines[0] = line::encode(
        &Stamp {
            seq: 1,
            prev: "ab".repeat(32),
            at: DAY1,
            writer: WRITER.to_owned(),
        },
        &event(1),
    );
    assert_eq!(problem(&joined(&lines)).0, 1);
}

#[tokio::test]
async fn verify_reads_the_blobs_of_the_days_asked() {
    let store = Arc::new(MemoryStore::with_limits(50_000, 2));
    store.put(BLOB1, joined(&chain(3)));
    store.put("2026-11-29/other-2-0000.jsonl", joined(&chain(2)));
    store.put("2026-11-30/other-2-0000.jsonl", joined(&chain(1)));
    store.put("README.txt", b"not audit".to_vec());
    let all = verify(store.as_ref(), None).await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.lines).collect::<Vec<_>>(),
        vec![3, 2, 1]
    );
    let since = verify(store.as_ref(), Some(date!(2026 - 11 - 29)))
        .await
        .unwrap();
    assert_eq!(since.len(), 2);
    assert_eq!(since[0].name, "2026-11-29/other-2-0000.jsonl");
}

/// What an export of `[since, until)` counts and writes.
async fn exported(
    store: &MemoryStore,
    since: time::Date,
    until: time::Date,
) -> (super::export::Exported, Vec<u8>) {
    let mut out = Vec::new();
    let done = super::export::export(store, since, until, &mut out)
        .await
        .unwrap();
    (done, out)
}

#[tokio::test]
async fn export_writes_the_lines_of_the_period_as_stored() {
    let store = Arc::new(MemoryStore::new());
    let (log, writer) = start(&store, settings());
    log.record_at(datetime!(2026-11-27 12:00 UTC), event(1));
    log.record_at(DAY1, event(2));
    log.record_at(DAY2, event(3));
    log.record_at(datetime!(2026-11-30 00:00 UTC), event(4));
    writer.shutdown(Duration::from_secs(5)).await;
    let (exported, out) = exported(&store, date!(2026 - 11 - 28), date!(2026 - 11 - 30)).await;
    assert_eq!(
        (exported.blobs, exported.lines, exported.unreadable),
        (2, 2, 0)
    );
    let expected: Vec<u8> = [BLOB1, "2026-11-29/host-1-ab12.jsonl"]
        .iter()
        .flat_map(|name| store.body(name).unwrap())
        .collect();
    assert_eq!(out, expected, "lines exactly as stored");
}

#[tokio::test]
async fn export_finds_the_lines_of_a_batch_that_crossed_midnight() {
    let store = Arc::new(MemoryStore::new());
    // A batch is written to the blob of its first line's day: 23:59:59 on the 28th, then
    // 00:00:00 and 00:00:01 on the 29th. A torn line in the 28th's blob is the 28th's concern.
    let mut lines = chain(3);
    lines.insert(0, b"torn".to_vec());
    store.put(BLOB1, joined(&lines));
    let (exported, out) = exported(&store, date!(2026 - 11 - 29), date!(2026 - 11 - 30)).await;
    assert_eq!(
        (exported.blobs, exported.lines, exported.unreadable),
        (1, 2, 0)
    );
    assert_eq!(out, joined(&chain(3)[1..]), "the 29th's lines, as stored");
}

// ---- what operators see ----

/// Log output captured on this thread (the tests' runtime runs the writer task here too).
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn long_failures_and_lost_lines_are_logged_as_errors() {
    let logs = Captured::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let store = Arc::new(MemoryStore::new());
    store.fail_next(&vec![Fault::Unavailable; 6]);
    let (log, writer) = start(
        &store,
        WriterSettings {
            max_waiting: 2,
            alarm_after: 5,
            ..settings()
        },
    );
    log.record_at(DAY1, event(1));
    until(|| store.faults_left() < 6).await;
    // While the first line is retried, three more come: the oldest of them is dropped.
    for n in 2..=4 {
        log.record_at(DAY1, event(n));
    }
    writer.shutdown(Duration::from_secs(5)).await;
    assert_eq!(job_ids(&store, BLOB1), vec![1, 3, 4]);

    let text = logs.text();
    let errors: Vec<&str> = text.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 2, "{text}");
    assert!(
        errors[0].contains("audit lines cannot be written; retrying")
            && errors[0].contains("failures=5"),
        "{text}"
    );
    assert!(
        errors[1].contains("audit lines lost") && errors[1].contains("lost=1"),
        "{text}"
    );
    assert!(text.contains("audit lines are written again"), "{text}");
}

#[tokio::test]
async fn a_writers_parts_are_listed_in_number_order() {
    let store = MemoryStore::new();
    for part in ["", ".10", ".2"] {
        store.put(&format!("2026-11-28/host-1-1234{part}.jsonl"), Vec::new());
    }
    store.put("2026-11-27/host-1-1234.2.jsonl", Vec::new());
    let names = super::verify::list_blobs(&store, None).await.unwrap();
    assert_eq!(
        names,
        [
            "2026-11-27/host-1-1234.2.jsonl",
            "2026-11-28/host-1-1234.jsonl",
            "2026-11-28/host-1-1234.2.jsonl",
            "2026-11-28/host-1-1234.10.jsonl",
        ]
    );
}
