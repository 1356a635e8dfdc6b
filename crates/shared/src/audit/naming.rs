//! Audit blob names and writer ids: `<yyyy-mm-dd>/<writer>.jsonl`, then `<writer>.2.jsonl`, …
//! for the next parts (a blob is full after 50,000 appends). The day is the UTC day of the
//! blob's first line. Writer ids have no dots, so a name tells its writer and part.

use crate::records::format_day;
use time::Date;

/// Name of part `part` (1, 2, …) of a writer's blob for `day`.
pub fn blob_name(day: Date, writer: &str, part: u32) -> String {
    if part <= 1 {
        format!("{}/{writer}.jsonl", format_day(day))
    } else {
        format!("{}/{writer}.{part}.jsonl", format_day(day))
    }
}

/// The day, writer and part of an audit blob's name, if it is one.
pub fn parse_name(name: &str) -> Option<(Date, &str, u32)> {
    let (day, rest) = name.split_once('/')?;
    let stem = rest.strip_suffix(".jsonl")?;
    let (writer, part) = match stem.rsplit_once('.') {
        Some((writer, part)) => (writer, part.parse().ok()?),
        None => (stem, 1),
    };
    Some((parse_day(day)?, writer, part))
}

/// The day an audit blob's name starts with, if it is one.
pub fn blob_day(name: &str) -> Option<Date> {
    let (day, rest) = name.split_once('/')?;
    if !rest.ends_with(".jsonl") {
        return None;
    }
    parse_day(day)
}

/// `yyyy-mm-dd`.
pub fn parse_day(text: &str) -> Option<Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(text.trim(), &format).ok()
}

/// `<hostname>-<pid>-<12 random hex>`, safe in a blob name: lower-case letters, digits and
/// `-`. The random part keeps two processes with the same host name and pid (containers, where
/// the pid is often 1) apart: it is also the runner's identity as a job's holder, and two
/// runners taking each other's claims for their own would run a job twice (48 bits: a clash
/// between 1,000 runners of one host name is a chance in about 500 million).
pub fn writer_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let random = uuid::Uuid::new_v4();
    let [a, b, c, d, e, f, ..] = *random.as_bytes();
    compose(&host, std::process::id(), [a, b, c, d, e, f])
}

fn compose(host: &str, pid: u32, random: [u8; 6]) -> String {
    let mut clean: String = host
        .trim()
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .take(40)
        .collect();
    while clean.contains("--") {
        clean = clean.replace("--", "-");
    }
    let clean = clean.trim_matches('-');
    let host = if clean.is_empty() { "host" } else { clean };
    let random: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!("{host}-{pid}-{random}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn names_carry_the_day_and_the_part() {
        assert_eq!(
            blob_name(date!(2026 - 11 - 28), "h-1-ab12", 1),
            "2026-11-28/h-1-ab12.jsonl"
        );
        assert_eq!(
            blob_name(date!(2026 - 01 - 02), "h-1-ab12", 3),
            "2026-01-02/h-1-ab12.3.jsonl"
        );
        assert_eq!(
            blob_day("2026-01-02/h-1-ab12.3.jsonl"),
            Some(date!(2026 - 01 - 02))
        );
        assert_eq!(
            parse_name("2026-01-02/h-1-1234.10.jsonl"),
            Some((date!(2026 - 01 - 02), "h-1-1234", 10))
        );
        assert_eq!(
            parse_name("2026-01-02/h-1-1234.jsonl"),
            Some((date!(2026 - 01 - 02), "h-1-1234", 1))
        );
        assert_eq!(blob_day("2026-01-02/readme.txt"), None);
        assert_eq!(blob_day("jobs/2026-01-02/x.jsonl"), None);
    }

    #[test]
    fn writer_ids_are_safe_blob_names() {
        assert_eq!(
            compose("Web_01.Example.COM\n", 42, [0xab, 0x01, 0, 0, 0, 0x10]),
            "web-01-example-com-42-ab0100000010"
        );
        assert_eq!(compose("", 7, [0, 0xff, 0, 0, 0, 0]), "host-7-00ff00000000");
        assert_eq!(compose("--..--", 7, [0; 6]), "host-7-000000000000");
        assert_eq!(compose(&"x".repeat(100), 1, [0; 6]).len(), 40 + 15);
        let id = writer_id();
        assert!(
            id.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{id}"
        );
    }
}
