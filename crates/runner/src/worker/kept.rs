//! A local script's whole output, kept next to its job record (an append blob, see
//! [`chatops_shared::records::output_name`]) in the batches the live tail gets, up to
//! `CHATOPS_OUTPUT_KEEP` bytes; past that a last line says it was cut. Best effort: a write that
//! fails is logged and keeping stops (the record keeps the output's end anyway).

use chatops_shared::records::Records;

/// The kept output of one job.
pub(super) struct Kept {
    records: Records,
    record_name: String,
    cap: u64,
    written: u64,
    started: bool,
    done: bool,
}

impl Kept {
    pub(super) fn new(records: Records, record_name: String, cap: u64) -> Self {
        Kept {
            records,
            record_name,
            cap,
            written: 0,
            started: false,
            done: cap == 0,
        }
    }

    /// Appends a batch; past the cap, what fits and a note.
    pub(super) async fn append(&mut self, text: &str) {
        if self.done || text.is_empty() {
            return;
        }
        if !self.started {
            if let Err(e) = self.records.create_output(&self.record_name).await {
                tracing::warn!(error = %e, "could not start keeping the job's whole output");
                self.done = true;
                return;
            }
            self.started = true;
        }
        let room = usize::try_from(self.cap - self.written).unwrap_or(usize::MAX);
        let block = if text.len() <= room {
            text.to_owned()
        } else {
            let mut end = room;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            self.done = true;
            let mut cut = text[..end].to_owned();
            if !cut.is_empty() && !cut.ends_with('\n') {
                cut.push('\n');
            }
            cut.push_str(&format!(
                "[output cut here: only the first {} bytes are kept]\n",
                self.cap
            ));
            cut
        }
        .into_bytes();
        // Azure takes at most 4 MiB in one Append Block.
        for piece in block.chunks(APPEND_BLOCK_MAX) {
            if let Err(e) = self
                .records
                .append_output(&self.record_name, piece.to_vec(), self.written)
                .await
            {
                tracing::warn!(error = %e, "could not keep more of the job's output");
                self.done = true;
                return;
            }
            self.written += piece.len() as u64;
        }
    }
}

/// The most one Append Block may carry.
const APPEND_BLOCK_MAX: usize = 4 * 1024 * 1024;
