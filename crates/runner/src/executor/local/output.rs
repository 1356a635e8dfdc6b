//! The script's output: a background reader of the output pipe that keeps a bounded tail
//! (the end of a log is what tells what happened), with a note when it was truncated, and,
//! once [`OutputPump::stream_to`] is called, passes every chunk on as text for the live tail.

use crate::executor::Progress;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::AsyncReadExt as _;
use tokio::net::unix::pipe;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

/// Reads the output pipe in the background into a bounded tail.
pub(super) struct OutputPump {
    tail: Arc<Mutex<Tail>>,
    task: Option<JoinHandle<()>>,
}

impl OutputPump {
    pub(super) fn start(mut receiver: pipe::Receiver, limit: usize) -> Self {
        let tail = Arc::new(Mutex::new(Tail::new(limit)));
        let sink = Arc::clone(&tail);
        let task = tokio::spawn(async move {
            let mut chunk = vec![0u8; 16 * 1024];
            loop {
                match receiver.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(&chunk[..n]),
                }
            }
        });
        OutputPump {
            tail,
            task: Some(task),
        }
    }

    /// Waits for end-of-file. Cancel-safe: a cancelled wait can be resumed.
    pub(super) async fn finish(&mut self) {
        if let Some(task) = self.task.as_mut() {
            let _ = task.await;
            self.task = None;
        }
    }

    /// Waits for end-of-file at most `limit`; false when the pipe is still open.
    pub(super) async fn finish_within(&mut self, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.finish()).await.is_ok()
    }

    /// From now on every chunk read goes to `sink` as [`Progress::Output`], starting with what
    /// was read so far (when it was all kept).
    pub(super) fn stream_to(&self, sink: UnboundedSender<Progress>) {
        let mut tail = self.tail.lock().unwrap_or_else(PoisonError::into_inner);
        let mut live = Live {
            sink,
            partial: Vec::new(),
        };
        if tail.total == tail.bytes.len() && !tail.bytes.is_empty() {
            live.send(&tail.bytes);
        }
        tail.live = Some(live);
    }

    pub(super) fn note(&self, line: &str) {
        let mut tail = self.tail.lock().unwrap_or_else(PoisonError::into_inner);
        if !tail.ends_with_newline() {
            tail.push(b"\n");
        }
        tail.push(line.as_bytes());
        tail.push(b"\n");
    }

    pub(super) fn into_text(mut self) -> String {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        let mut tail = self.tail.lock().unwrap_or_else(PoisonError::into_inner);
        // The end of the stream: the live tail's sink is let go.
        tail.live = None;
        tail.text()
    }
}

/// The last `limit` bytes of a stream, and how much there was; with a live sink, each chunk is
/// passed on too.
pub(super) struct Tail {
    bytes: Vec<u8>,
    total: usize,
    limit: usize,
    live: Option<Live>,
}

/// Where new output goes as text, and the start of a UTF-8 character cut at a chunk's end.
struct Live {
    sink: UnboundedSender<Progress>,
    partial: Vec<u8>,
}

impl Live {
    fn send(&mut self, chunk: &[u8]) {
        self.partial.extend_from_slice(chunk);
        let text = take_text(&mut self.partial);
        if !text.is_empty() {
            // The receiver is gone only when the worker stopped caring.
            let _ = self.sink.send(Progress::Output { text });
        }
    }
}

/// The text of `bytes` up to a UTF-8 character cut at their end (kept in `bytes`); invalid
/// bytes become U+FFFD.
fn take_text(bytes: &mut Vec<u8>) -> String {
    let keep = match std::str::from_utf8(bytes) {
        Ok(_) => 0,
        Err(e) if e.error_len().is_none() => bytes.len() - e.valid_up_to(),
        Err(_) => {
            // Invalid inside: decode lossily, keeping only a cut character at the very end.
            let tail = bytes.len().saturating_sub(3);
            (tail..bytes.len())
                .find(|&i| {
                    std::str::from_utf8(&bytes[i..])
                        .err()
                        .is_some_and(|e| e.valid_up_to() == 0 && e.error_len().is_none())
                })
                .map_or(0, |i| bytes.len() - i)
        }
    };
    let rest = bytes.split_off(bytes.len() - keep);
    let text = String::from_utf8_lossy(bytes).into_owned();
    *bytes = rest;
    text
}

impl Tail {
    pub(super) fn new(limit: usize) -> Self {
        Tail {
            bytes: Vec::new(),
            total: 0,
            limit,
            live: None,
        }
    }

    pub(super) fn push(&mut self, chunk: &[u8]) {
        if let Some(live) = self.live.as_mut() {
            live.send(chunk);
        }
        self.total += chunk.len();
        self.bytes.extend_from_slice(chunk);
        // Trim in batches so a chatty script does not cost a copy per read.
        if self.bytes.len() > self.limit.saturating_mul(2) {
            // One byte more than the limit: `text` sees whether the kept part starts a line.
            let excess = self
                .bytes
                .len()
                .saturating_sub(self.limit.saturating_add(1));
            self.bytes.drain(..excess);
        }
    }

    fn ends_with_newline(&self) -> bool {
        self.bytes.last().is_none_or(|b| *b == b'\n')
    }

    pub(super) fn text(&self) -> String {
        let start = self.bytes.len().saturating_sub(self.limit);
        let mut kept = &self.bytes[start..];
        if start == 0 && self.total <= self.limit {
            return String::from_utf8_lossy(kept).into_owned();
        }
        // Not in the middle of a character, nor of a line (which could hold a secret value's
        // end, unrecognisable to masking). A trim keeps a byte more than the limit: the one
        // before what is kept.
        let before = start
            .checked_sub(1)
            .and_then(|i| self.bytes.get(i).copied());
        kept = &kept[chatops_shared::body::cut_start(before, kept)..];
        format!(
            "[output truncated: last {} of {} bytes kept]\n{}",
            kept.len(),
            self.total,
            String::from_utf8_lossy(kept)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_chunks_do_not_split_characters() {
        let (sink, mut got) = tokio::sync::mpsc::unbounded_channel();
        let mut tail = Tail::new(100);
        tail.live = Some(Live {
            sink,
            partial: Vec::new(),
        });
        let all = "aé€🚀 end".as_bytes().to_vec();
        for b in all.chunks(1) {
            tail.push(b);
        }
        let mut text = String::new();
        while let Ok(Progress::Output { text: t }) = got.try_recv() {
            text.push_str(&t);
        }
        assert_eq!(text, "aé€🚀 end");
        let mut bad = vec![b'a', 0xff, b'b', 0xe2, 0x82];
        assert_eq!(take_text(&mut bad), "a\u{FFFD}b");
        assert_eq!(bad, vec![0xe2, 0x82]);
    }

    #[test]
    fn a_cut_tail_starts_at_a_line() {
        let mut tail = Tail::new(12);
        tail.push(b"token hunter22\nnext\n");
        assert_eq!(
            tail.text(),
            "[output truncated: last 5 of 20 bytes kept]\nnext\n"
        );
        // Cut exactly at a line's start: that line is kept.
        let mut tail = Tail::new(5);
        tail.push(b"token hunter22\nnext\n");
        assert_eq!(
            tail.text(),
            "[output truncated: last 5 of 20 bytes kept]\nnext\n"
        );
    }

    #[test]
    fn tail_does_not_split_characters() {
        let mut tail = Tail::new(4);
        tail.push("aé€".as_bytes()); // 1 + 2 + 3 bytes; the last 4 start inside `é`
        assert_eq!(tail.text(), "[output truncated: last 3 of 6 bytes kept]\n€");
    }
}
