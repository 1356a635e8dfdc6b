//! One audit line and the hash chain: a line is `{"seq":…,"prev":…,"at":…,"writer":…,"event":…,…}`
//! (the event's fields flattened into it) followed by `\n`; `prev` is the hex SHA-256 of the
//! writer's previous line in the same blob (its bytes without the `\n`), [`GENESIS`] for the
//! first line, so an edit or removal in the middle of a blob breaks the chain after it.

use super::AuditEvent;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use time::OffsetDateTime;

/// `prev` of a blob's first line.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What the writer adds to an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    /// 1, 2, … within the blob.
    pub seq: u64,
    /// [`hash`] of the previous line of the blob, [`GENESIS`] for the first.
    pub prev: String,
    /// When the event was recorded (RFC 3339, UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The writer id (see [`super::writer_id`]).
    pub writer: String,
}

#[derive(Serialize)]
struct LineOut<'a> {
    #[serde(flatten)]
    stamp: &'a Stamp,
    #[serde(flatten)]
    event: &'a AuditEvent,
}

/// The line's bytes, without the final `\n`.
pub fn encode(stamp: &Stamp, event: &AuditEvent) -> Vec<u8> {
    // Strings, numbers, maps and a timestamp that formats (years 0..=9999): cannot fail.
    serde_json::to_vec(&LineOut { stamp, event }).unwrap_or_default()
}

/// Reads the stamp of a stored line (the event's own fields are not needed to check a chain,
/// and an event kind added later must not make older readers fail).
pub fn decode_stamp(line: &[u8]) -> Result<Stamp, serde_json::Error> {
    serde_json::from_slice(line)
}

/// Lower-case hex SHA-256 of a line's bytes (without its `\n`).
pub fn hash(line: &[u8]) -> String {
    let digest = Sha256::digest(line);
    let mut hex = String::with_capacity(64);
    for byte in digest {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// The last complete line of a blob's body (without its `\n`), and whether the body ends with
/// a `\n`. `None` for an empty body.
pub fn last_line(body: &[u8]) -> Option<(&[u8], bool)> {
    let (body, terminated) = match body.strip_suffix(b"\n") {
        Some(rest) => (rest, true),
        None => (body, false),
    };
    if body.is_empty() && terminated {
        return Some((body, true));
    }
    if body.is_empty() {
        return None;
    }
    let start = body.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    Some((&body[start..], terminated))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;
    use uuid::Uuid;

    fn stamp(seq: u64, prev: &str) -> Stamp {
        Stamp {
            seq,
            prev: prev.to_owned(),
            at: datetime!(2026-11-28 09:40:00.5 UTC),
            writer: "host-7-ab12".to_owned(),
        }
    }

    #[test]
    fn a_line_is_the_stamp_then_the_event_flattened() {
        let event = AuditEvent::Started {
            job_id: Uuid::nil(),
            runner: "r1".to_owned(),
        };
        let line = encode(&stamp(1, GENESIS), &event);
        assert_eq!(
            String::from_utf8(line.clone()).unwrap(),
            format!(
                r#"{{"seq":1,"prev":"{GENESIS}","at":"2026-11-28T09:40:00.5Z","writer":"host-7-ab12","event":"started","job_id":"00000000-0000-0000-0000-000000000000","runner":"r1"}}"#
            )
        );
        assert_eq!(decode_stamp(&line).unwrap(), stamp(1, GENESIS));
        let whole: AuditEvent = serde_json::from_slice(&line).unwrap();
        assert_eq!(whole, event, "the event reads back from the line");
    }

    #[test]
    fn the_hash_is_hex_sha256_of_the_line_without_its_newline() {
        // sha256("abc"), the FIPS 180-2 example.
        assert_eq!(
            hash(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(GENESIS.len(), 64);
    }

    #[test]
    fn the_last_line_of_a_body() {
        assert_eq!(last_line(b""), None);
        assert_eq!(last_line(b"a\nbc\n"), Some((&b"bc"[..], true)));
        assert_eq!(last_line(b"a\nbc"), Some((&b"bc"[..], false)));
        assert_eq!(last_line(b"abc\n"), Some((&b"abc"[..], true)));
    }
}
