//! The command language (`crates/shared/src/command.rs`).
//!
//! Any text must be split into words or refused without a panic, and a command that was read
//! reads back the same when written out again with `command::quote` (within the length cap).

#![no_main]

use chatops_shared::command::{self, Arg, CommandError, ParsedCommand};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Slack's form decoder hands the text over as a `str`.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = match command::parse(text) {
        Ok(parsed) => parsed,
        Err(CommandError::UnterminatedQuote { position, .. }) => {
            assert!((1..=text.chars().count()).contains(&position));
            return;
        }
        Err(_) => return,
    };
    let written = write(&parsed);
    if written.chars().count() <= command::MAX_CHARS {
        assert_eq!(
            command::parse(&written),
            Ok(parsed),
            "written as {written:?}"
        );
    }
});

/// The command as a user could type it: every word quoted where it needs to be.
fn write(parsed: &ParsedCommand) -> String {
    let Some(runbook) = &parsed.runbook else {
        return String::new();
    };
    let args = parsed.args.iter().map(|arg| match arg {
        Arg::Positional(value) => command::quote(value),
        Arg::Named { name, value } => format!("{name}={}", command::quote(value)),
    });
    std::iter::once(command::quote(runbook))
        .chain(args)
        .collect::<Vec<_>>()
        .join(" ")
}
