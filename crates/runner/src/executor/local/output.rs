//! The script's output: a background reader of the output pipe that keeps a bounded tail
//! (the end of a log is what tells what happened), with a note when it was truncated.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::AsyncReadExt as _;
use tokio::net::unix::pipe;
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
        self.tail
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .text()
    }
}

/// The last `limit` bytes of a stream, and how much there was.
pub(super) struct Tail {
    bytes: Vec<u8>,
    total: usize,
    limit: usize,
}

impl Tail {
    pub(super) fn new(limit: usize) -> Self {
        Tail {
            bytes: Vec::new(),
            total: 0,
            limit,
        }
    }

    pub(super) fn push(&mut self, chunk: &[u8]) {
        self.total += chunk.len();
        self.bytes.extend_from_slice(chunk);
        // Trim in batches so a chatty script does not cost a copy per read.
        if self.bytes.len() > self.limit.saturating_mul(2) {
            let excess = self.bytes.len() - self.limit;
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
        // Do not start in the middle of a UTF-8 character.
        while let Some((first, rest)) = kept.split_first()
            && first & 0b1100_0000 == 0b1000_0000
        {
            kept = rest;
        }
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
    fn tail_does_not_split_characters() {
        let mut tail = Tail::new(4);
        tail.push("aé€".as_bytes()); // 1 + 2 + 3 bytes; the last 4 start inside `é`
        assert_eq!(tail.text(), "[output truncated: last 3 of 6 bytes kept]\n€");
    }
}
