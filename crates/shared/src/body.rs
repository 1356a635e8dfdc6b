//! Reading HTTP answer bodies with a bound: an outside service (ARM, Slack) decides how big its
//! answer is, so no body is ever read whole into memory.
//!
//! - [`read_head`] keeps the first bytes and stops reading there (error bodies, JSON answers).
//! - [`read_tail`] reads to the end keeping only the last bytes (a job's output: its end is
//!   what is shown).

/// The first bytes of a body, and whether there were more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub bytes: Vec<u8>,
    /// The body was longer than the bound; the rest was not read.
    pub cut: bool,
}

/// The last bytes of a body, and how long it was in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    pub bytes: Vec<u8>,
    /// Bytes of the whole body.
    pub total: u64,
    /// The byte just before the kept ones; `None` when nothing was cut off.
    pub before: Option<u8>,
}

impl Tail {
    /// The kept bytes as text. A cut tail starts at a line's start when one is near
    /// ([`cut_start`]); invalid UTF-8 elsewhere is replaced.
    pub fn text(&self) -> String {
        let start = cut_start(self.before, &self.bytes);
        String::from_utf8_lossy(&self.bytes[start..]).into_owned()
    }
}

/// How far into a cut tail a line's start is looked for.
const LINE_START_SEARCH: usize = 4096;

/// Where text kept from the end of something longer starts, given the byte just before it
/// (`before`; `None`: nothing was cut off, so the text starts where it is):
/// - just after a line break, at once: the cut fell at a line's start;
/// - else after the first line break within its first 4 KiB (the line the cut went through is
///   dropped whole: it could hold the end of a secret value, which masking would not
///   recognise), else at the first whole character.
pub fn cut_start(before: Option<u8>, bytes: &[u8]) -> usize {
    if matches!(before, None | Some(b'\n')) {
        return 0;
    }
    let near = &bytes[..bytes.len().min(LINE_START_SEARCH)];
    match near.iter().position(|&b| b == b'\n') {
        Some(end) => end + 1,
        None => bytes
            .iter()
            .take(3)
            .take_while(|b| (**b & 0b1100_0000) == 0b1000_0000)
            .count(),
    }
}

/// Reads at most `max` bytes of the body; the rest is left unread (the connection is dropped).
pub async fn read_head(
    mut response: reqwest::Response,
    max: usize,
) -> Result<Head, reqwest::Error> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = max - bytes.len();
        if chunk.len() > room {
            bytes.extend_from_slice(&chunk[..room]);
            return Ok(Head { bytes, cut: true });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Head { bytes, cut: false })
}

/// Reads the whole body, keeping only its last `max` bytes in memory (at most twice that while
/// reading), and the byte before them.
pub async fn read_tail(
    mut response: reqwest::Response,
    max: usize,
) -> Result<Tail, reqwest::Error> {
    let mut tail = TailBuffer::new(max);
    while let Some(chunk) = response.chunk().await? {
        tail.push(&chunk);
    }
    Ok(tail.finish())
}

/// The bounded buffer behind [`read_tail`]: the last `max` bytes and the one before them.
#[derive(Debug)]
struct TailBuffer {
    max: usize,
    bytes: Vec<u8>,
    total: u64,
}

impl TailBuffer {
    fn new(max: usize) -> Self {
        TailBuffer {
            max,
            bytes: Vec::new(),
            total: 0,
        }
    }

    /// How many bytes are kept: one more than the bound, for [`Tail::before`].
    fn keep(&self) -> usize {
        self.max.saturating_add(1)
    }

    fn push(&mut self, chunk: &[u8]) {
        self.total += chunk.len() as u64;
        let chunk = &chunk[chunk.len().saturating_sub(self.keep())..];
        self.bytes.extend_from_slice(chunk);
        // Drop the front only once it doubles the bound: amortised, each byte moves once.
        if self.bytes.len() > self.keep().saturating_mul(2) {
            let excess = self.bytes.len() - self.keep();
            self.bytes.drain(..excess);
        }
    }

    fn finish(mut self) -> Tail {
        let excess = self.bytes.len().saturating_sub(self.max);
        let before = excess
            .checked_sub(1)
            .and_then(|i| self.bytes.get(i).copied());
        self.bytes.drain(..excess);
        Tail {
            bytes: self.bytes,
            total: self.total,
            before,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_buffer_keeps_the_last_bytes() {
        let mut t = TailBuffer::new(5);
        for chunk in [&b"abc"[..], b"defgh", b"", b"ijklmnopq", b"r"] {
            t.push(chunk);
            assert!(t.bytes.len() <= 12);
        }
        let tail = t.finish();
        assert_eq!(tail.bytes, b"nopqr");
        assert_eq!(tail.total, 18);
        assert_eq!(tail.before, Some(b'm'));

        let mut short = TailBuffer::new(100);
        short.push(b"hi");
        assert_eq!(
            short.finish(),
            Tail {
                bytes: b"hi".to_vec(),
                total: 2,
                before: None,
            }
        );
    }

    #[test]
    fn a_tail_cut_at_a_line_start_keeps_that_line() {
        // Cut exactly after a line break: the first kept line is whole, and kept.
        let mut t = TailBuffer::new(11);
        t.push(b"secret=1\nfirst\nlast\n");
        let tail = t.finish();
        assert_eq!(tail.before, Some(b'\n'));
        assert_eq!(tail.text(), "first\nlast\n");
        // One byte earlier, the cut goes through a line, which is dropped.
        let mut t = TailBuffer::new(10);
        t.push(b"secret=1\nfirst\nlast\n");
        assert_eq!(t.finish().text(), "last\n");
        // Nothing cut: the text is whole, a first line included.
        assert_eq!(cut_start(None, b"one\ntwo"), 0);
    }

    #[test]
    fn a_character_cut_at_the_start_is_dropped() {
        // "é" is C3 A9: a tail starting at A9 begins inside it.
        let cut = Tail {
            bytes: vec![0xA9, b'o', b'k'],
            total: 4,
            before: Some(0xC3),
        };
        assert_eq!(cut.text(), "ok");
        // The line the cut went through is dropped whole (`er22` of a secret `hunter22`).
        let cut = Tail {
            bytes: b"er22 used\nnext\n".to_vec(),
            total: 40,
            before: Some(b'n'),
        };
        assert_eq!(cut.text(), "next\n");
        let whole = Tail {
            bytes: "éok".as_bytes().to_vec(),
            total: 4,
            before: None,
        };
        assert_eq!(whole.text(), "éok");
    }
}
