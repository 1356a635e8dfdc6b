//! The CPU time a process has used (user and system, all its threads), from
//! `/proc/<pid>/stat` (Linux; `None` elsewhere). Taken before and after a run, it gives what a
//! request cost the process that served it, a figure far steadier between runs than
//! throughput on a shared machine.

use std::time::Duration;

/// `/proc` counts in USER_HZ ticks: 100 a second on x86-64 and arm64, where the bench runs.
/// At 10 ms a tick, a smoke run's 300 requests give a coarse figure (about 33 µs a tick);
/// 10,000 give about 1 µs.
const TICKS_PER_SECOND: u64 = 100;

/// CPU time process `pid` has used so far.
pub fn used(pid: u32) -> Option<Duration> {
    parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// `utime + stime` of a `/proc/<pid>/stat` line. The command name (field 2) is in parentheses
/// and may hold spaces and parentheses itself, so fields are counted after its last `)`.
fn parse(stat: &str) -> Option<Duration> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    // `rest` starts at field 3 (state): utime and stime are fields 14 and 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis(
        (utime + stime) * 1000 / TICKS_PER_SECOND,
    ))
}

/// CPU used per request between two readings, when both were taken and requests were made.
pub fn per_request(
    before: Option<Duration>,
    after: Option<Duration>,
    requests: usize,
) -> Option<Duration> {
    let used = after?.checked_sub(before?)?;
    let requests = u32::try_from(requests).ok().filter(|&n| n > 0)?;
    Some(used / requests)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_and_system_ticks_are_read_after_the_command_name() {
        let line = "17385 (a) b (c)) R 17380 17380 7085 0 -1 4194304 102 0 0 0 168 71 0 0 20 0 1 0";
        assert_eq!(parse(line), Some(Duration::from_millis(2390)));
        assert_eq!(parse("17385 (cut) R 1 2"), None);
    }

    #[test]
    fn the_reading_grows_as_this_process_burns_cpu() {
        let first = used(std::process::id()).expect("Linux /proc");
        let started = std::time::Instant::now();
        let mut x = 0u64;
        loop {
            for i in 0..1_000_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            std::hint::black_box(x);
            let now = used(std::process::id()).expect("Linux /proc");
            if now >= first + Duration::from_millis(30) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "10 s of busy work and the reading stayed at {now:?} (from {first:?})"
            );
        }
    }

    #[test]
    fn per_request_divides_what_was_used_in_between() {
        let ms = Duration::from_millis;
        assert_eq!(
            per_request(Some(ms(1000)), Some(ms(3000)), 10_000),
            Some(Duration::from_micros(200))
        );
        assert_eq!(per_request(None, Some(ms(1)), 1), None);
        assert_eq!(per_request(Some(ms(1)), Some(ms(2)), 0), None);
    }
}
