//! `chatops-runner audit verify [--since YYYY-MM-DD]` and
//! `chatops-runner audit export --since YYYY-MM-DD --until YYYY-MM-DD`: the audit log's checks
//! and export for people and SIEMs (see `docs/audit.md`). Storage is configured as for the runner
//! (connection string or endpoint, `CHATOPS_AZURE_CREDENTIAL`), the container by
//! `CHATOPS_AUDIT_CONTAINER`.
//!
//! Exit codes: 0 verified (or exported whole), 1 a chain has a problem (printed), lines could
//! not be read and were left out of an export, storage failed, or the output could not be
//! written; 2 usage or configuration error.

use chatops_shared::audit::export;
use chatops_shared::audit::naming::parse_day;
use chatops_shared::audit::verify::{self, BlobReport};
use chatops_shared::blob::settings::BlobTarget;
use chatops_shared::blob::{self, BlobError, BlobStore};
use chatops_shared::config::{ConfigError, EnvSource, ProcessEnv};
use chatops_shared::credential;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use time::Date;
use time::format_description::well_known::Rfc3339;

const USAGE: &str = "usage: chatops-runner audit verify [--since YYYY-MM-DD]\n       \
                     chatops-runner audit export --since YYYY-MM-DD --until YYYY-MM-DD";

/// What was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Command {
    Verify { since: Option<Date> },
    Export { since: Date, until: Date },
    Help,
}

/// A command line that cannot be run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
enum UsageError {
    #[error("name a subcommand: verify or export")]
    NoSubcommand,
    #[error("`{0}` is not a subcommand: use verify or export")]
    UnknownSubcommand(String),
    #[error("`{0}` is not an option here")]
    UnknownOption(String),
    #[error("{0} needs a date (YYYY-MM-DD)")]
    MissingValue(&'static str),
    #[error("{option}: `{value}` is not a date (YYYY-MM-DD)")]
    BadDate { option: &'static str, value: String },
    #[error("export needs --since and --until")]
    ExportNeedsPeriod,
    #[error("--until ({until}) must be after --since ({since})")]
    EmptyPeriod { since: Date, until: Date },
}

/// Runs `chatops-runner audit <args>` (the arguments after `audit`).
pub async fn main(args: Vec<String>) -> ExitCode {
    let command = match parse(&args) {
        Ok(command) => command,
        Err(e) => {
            eprintln!("chatops-runner audit: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if command == Command::Help {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let store = match open_store(&ProcessEnv) {
        Ok(store) => store,
        Err(e) => {
            eprintln!("chatops-runner audit: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Verify { since } => run_verify(store.as_ref(), since).await,
        Command::Export { since, until } => run_export(store.as_ref(), since, until).await,
        Command::Help => ExitCode::SUCCESS,
    }
}

fn parse(args: &[String]) -> Result<Command, UsageError> {
    let Some((sub, rest)) = args.split_first() else {
        return Err(UsageError::NoSubcommand);
    };
    if matches!(sub.as_str(), "-h" | "--help" | "help") {
        return Ok(Command::Help);
    }
    let mut since = None;
    let mut until = None;
    let mut rest = rest.iter();
    while let Some(arg) = rest.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (arg.as_str(), None),
        };
        let (option, slot) = match name {
            "--since" => ("--since", &mut since),
            "--until" if sub == "export" => ("--until", &mut until),
            "-h" | "--help" => return Ok(Command::Help),
            _ => return Err(UsageError::UnknownOption(arg.clone())),
        };
        let value = inline
            .or_else(|| rest.next().cloned())
            .ok_or(UsageError::MissingValue(option))?;
        *slot = Some(parse_day(&value).ok_or(UsageError::BadDate { option, value })?);
    }
    match sub.as_str() {
        "verify" => Ok(Command::Verify { since }),
        "export" => match (since, until) {
            (Some(since), Some(until)) if since < until => Ok(Command::Export { since, until }),
            (Some(since), Some(until)) => Err(UsageError::EmptyPeriod { since, until }),
            _ => Err(UsageError::ExportNeedsPeriod),
        },
        other => Err(UsageError::UnknownSubcommand(other.to_owned())),
    }
}

/// Why the audit container cannot be reached.
#[derive(Debug, thiserror::Error)]
enum OpenError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Blob(#[from] BlobError),
}

/// The audit container, configured like the runner's storage: a connection string, or the
/// blob endpoint with the credential `CHATOPS_AZURE_CREDENTIAL` names.
fn open_store(env: &dyn EnvSource) -> Result<Arc<dyn BlobStore>, OpenError> {
    let mut settings = chatops_shared::audit::settings_from_env(env)?;
    // Patient: a day's audit log is read in one try.
    settings.budget = chatops_shared::queue::azure::RetryBudget::operator();
    let kind = credential::CredentialKind::from_env(env)?;
    let credential = match settings.target {
        BlobTarget::Endpoint(_) => Some(credential::build(&credential::choose(kind, env)?)?),
        BlobTarget::ConnectionString { .. } => None,
    };
    Ok(blob::open(settings, credential)?)
}

async fn run_verify(store: &dyn BlobStore, since: Option<Date>) -> ExitCode {
    let reports = match verify::verify(store, since).await {
        Ok(reports) => reports,
        Err(e) => {
            eprintln!("chatops-runner audit verify: cannot read the audit log: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = crate::write_stdout(summary(&reports).as_bytes()) {
        eprintln!("chatops-runner audit verify: cannot write to stdout: {e}");
        return ExitCode::FAILURE;
    }
    let broken = reports.iter().filter(|r| r.problem.is_some()).count();
    if broken > 0 {
        eprintln!("chatops-runner audit verify: {broken} blob(s) failed the check");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

async fn run_export(store: &dyn BlobStore, since: Date, until: Date) -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = export::export(store, since, until, &mut out).await;
    // `export` flushed already; a buffer it could not flush fails here again, and says so.
    let result = result.and_then(|done| Ok(out.flush().map(|()| done)?));
    match result {
        Ok(done) => {
            eprintln!(
                "exported {} line(s) from {} blob(s), {since} to {until} (until excluded)",
                done.lines, done.blobs
            );
            if done.unreadable > 0 {
                // A SIEM pipeline that checks the exit status must not take this as whole.
                eprintln!(
                    "{} line(s) could not be read and were left out: run `chatops-runner audit verify`",
                    done.unreadable
                );
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("chatops-runner audit export: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One line per blob (its lines, `ok` or its first problem), then the totals and per writer.
fn summary(reports: &[BlobReport]) -> String {
    let mut text = String::new();
    let mut writers: BTreeMap<&str, u64> = BTreeMap::new();
    for report in reports {
        let state = match &report.problem {
            None => "ok".to_owned(),
            Some(problem) => format!("PROBLEM: {}", problem.what),
        };
        text.push_str(&format!(
            "{}: {} lines, {state}\n",
            report.name, report.lines
        ));
        for (writer, lines) in &report.writers {
            *writers.entry(writer).or_default() += lines;
        }
    }
    let lines: u64 = reports.iter().map(|r| r.lines).sum();
    let first = reports.iter().filter_map(|r| r.first_at).min();
    let last = reports.iter().filter_map(|r| r.last_at).max();
    let time = |t: Option<time::OffsetDateTime>| {
        t.and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_else(|| "-".to_owned())
    };
    text.push_str(&format!(
        "blobs: {}, lines: {lines}, first: {}, last: {}\n",
        reports.len(),
        time(first),
        time(last)
    ));
    for (writer, lines) in writers {
        text.push_str(&format!("writer {writer}: {lines} lines\n"));
    }
    let broken = reports.iter().filter(|r| r.problem.is_some()).count();
    if broken == 0 {
        text.push_str("verified: every chain is intact\n");
    } else {
        text.push_str(&format!("NOT verified: {broken} blob(s) with a problem\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatops_shared::audit::verify::Problem;
    use time::macros::{date, datetime};

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn commands_are_read() {
        assert_eq!(parse(&args("verify")), Ok(Command::Verify { since: None }));
        assert_eq!(
            parse(&args("verify --since 2026-11-01")),
            Ok(Command::Verify {
                since: Some(date!(2026 - 11 - 01))
            })
        );
        assert_eq!(
            parse(&args("export --since=2026-11-01 --until 2026-11-08")),
            Ok(Command::Export {
                since: date!(2026 - 11 - 01),
                until: date!(2026 - 11 - 08)
            })
        );
        assert_eq!(parse(&args("--help")), Ok(Command::Help));
    }

    #[test]
    fn mistakes_say_what_is_wrong() {
        for (line, error) in [
            ("", UsageError::NoSubcommand),
            ("check", UsageError::UnknownSubcommand("check".to_owned())),
            (
                "verify --until 2026-11-01",
                UsageError::UnknownOption("--until".to_owned()),
            ),
            ("verify --since", UsageError::MissingValue("--since")),
            (
                "verify --since 11/01/2026",
                UsageError::BadDate {
                    option: "--since",
                    value: "11/01/2026".to_owned(),
                },
            ),
            ("export --since 2026-11-01", UsageError::ExportNeedsPeriod),
            (
                "export --since 2026-11-02 --until 2026-11-02",
                UsageError::EmptyPeriod {
                    since: date!(2026 - 11 - 02),
                    until: date!(2026 - 11 - 02),
                },
            ),
        ] {
            assert_eq!(parse(&args(line)), Err(error), "{line}");
        }
    }

    #[test]
    fn the_summary_names_blobs_totals_writers_and_problems() {
        let ok = BlobReport {
            name: "2026-11-28/a-1-0000.jsonl".to_owned(),
            lines: 3,
            first_at: Some(datetime!(2026-11-28 08:00 UTC)),
            last_at: Some(datetime!(2026-11-28 09:00 UTC)),
            writers: [("a-1-0000".to_owned(), 3)].into(),
            problem: None,
        };
        assert_eq!(
            summary(std::slice::from_ref(&ok)),
            "2026-11-28/a-1-0000.jsonl: 3 lines, ok\n\
             blobs: 1, lines: 3, first: 2026-11-28T08:00:00Z, last: 2026-11-28T09:00:00Z\n\
             writer a-1-0000: 3 lines\n\
             verified: every chain is intact\n"
        );
        let broken = BlobReport {
            name: "2026-11-29/a-1-0000.jsonl".to_owned(),
            problem: Some(Problem {
                line: 2,
                what: "line 2's prev does not match line 1".to_owned(),
            }),
            ..ok.clone()
        };
        let text = summary(&[ok, broken]);
        assert!(
            text.contains(
                "2026-11-29/a-1-0000.jsonl: 3 lines, PROBLEM: line 2's prev does not match line 1\n"
            ),
            "{text}"
        );
        assert!(text.contains("writer a-1-0000: 6 lines\n"), "{text}");
        assert!(
            text.ends_with("NOT verified: 1 blob(s) with a problem\n"),
            "{text}"
        );
    }
}
