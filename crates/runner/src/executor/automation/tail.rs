//! The live tail of an Automation job's Output stream: read while the job runs, at most once
//! per tail interval, each read going on from the page where the last one ended (that page is
//! read again for the records added to it since; records seen on it are skipped by id).
//!
//! Each record's text is its `summary` as the list gives it (one read per page, never one per
//! record); the whole output is in the Azure portal, whose link the job card carries.

use super::super::Progress;
use crate::executor::arm::{ArmClient, StreamRecord};
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;
use url::Url;

/// Where the tail of one job has read to.
pub(super) struct OutputTail {
    interval: Duration,
    last_read: Option<Instant>,
    /// The page the next read starts at; `None`: the first.
    page: Option<Url>,
    /// The ids of the records on that page, already passed on.
    seen: HashSet<String>,
}

impl OutputTail {
    pub(super) fn new(interval: Duration) -> Self {
        OutputTail {
            interval,
            last_read: None,
            page: None,
            seen: HashSet::new(),
        }
    }

    /// Whether a read is due (`interval` since the last one).
    pub(super) fn due(&self) -> bool {
        self.last_read
            .is_none_or(|at| at.elapsed() >= self.interval)
    }

    /// Reads the records added since the last read and passes their text on. A failed read is
    /// only logged: the next one goes on from the same place, and the final output is read
    /// at the end anyway.
    pub(super) async fn read(
        &mut self,
        client: &ArmClient,
        name: &str,
        progress: &UnboundedSender<Progress>,
    ) {
        self.last_read = Some(Instant::now());
        let pages = match client
            .read_streams_on(name, "Output", self.page.clone())
            .await
        {
            Ok(pages) => pages,
            Err(e) => {
                tracing::info!(error = %e, "could not read the job's output for the live tail");
                return;
            }
        };
        let first_new = pages.records.len() - pages.on_last_page;
        let text = self.take_new(&pages.records);
        self.seen = pages.records[first_new..]
            .iter()
            .map(|r| r.id.clone())
            .collect();
        self.page = Some(pages.last_page);
        if !text.is_empty() {
            let _ = progress.send(Progress::Output { text });
        }
    }

    /// The text of the records not seen before, a line each.
    fn take_new(&self, records: &[StreamRecord]) -> String {
        let mut text = String::new();
        for record in records.iter().filter(|r| !self.seen.contains(&r.id)) {
            // A record without text is an empty line.
            let line = record.summary.as_deref().or(record.stream_text.as_deref());
            text.push_str(line.unwrap_or("").trim_end_matches(['\r', '\n']));
            text.push('\n');
        }
        text
    }
}
