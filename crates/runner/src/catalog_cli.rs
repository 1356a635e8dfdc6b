//! `chatops-runner catalog sync [--runbook NAME]… [--out FILE [--force]]`: reads the Automation
//! account's runbooks and their parameters and writes catalog entries for an operator to review
//! (`chatops_runner::catalog_sync`), to stdout or to FILE (a new file: an existing one, perhaps
//! the catalog itself, is replaced only with `--force`). The account and the credential are
//! configured as for the runner (`AZURE_SUBSCRIPTION_ID`, `AUTOMATION_RESOURCE_GROUP`,
//! `AUTOMATION_ACCOUNT`, `CHATOPS_ARM_ENDPOINT`, `CHATOPS_AZURE_CREDENTIAL`); the identity needs
//! to read runbooks ("Automation Runbook Operator").
//!
//! Exit codes: 0 written, 1 ARM failed or the file could not be written, 2 usage or
//! configuration error.

use chatops_runner::catalog_sync;
use chatops_runner::executor::arm::{ArmClient, ArmConfig, RunbookInfo};
use chatops_shared::config::{ConfigError, ProcessEnv};
use chatops_shared::credential;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: chatops-runner catalog sync [--runbook NAME]... [--out FILE [--force]]";

/// What was asked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Sync {
    /// Only these runbooks (Automation names); all when empty.
    runbooks: Vec<String>,
    out: Option<PathBuf>,
    /// Replace FILE when it exists.
    force: bool,
    help: bool,
}

/// A command line that cannot be run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
enum UsageError {
    #[error("name a subcommand: sync")]
    NoSubcommand,
    #[error("`{0}` is not a subcommand: use sync")]
    UnknownSubcommand(String),
    #[error("`{0}` is not an option here")]
    UnknownOption(String),
    #[error("{0} needs a value")]
    MissingValue(&'static str),
}

/// Runs `chatops-runner catalog <args>` (the arguments after `catalog`).
pub async fn main(args: Vec<String>) -> ExitCode {
    let sync = match parse(&args) {
        Ok(sync) => sync,
        Err(e) => {
            eprintln!("chatops-runner catalog: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if sync.help {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let (client, account) = match open_client() {
        Ok(opened) => opened,
        Err(e) => {
            eprintln!("chatops-runner catalog: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let runbooks = match read_runbooks(&client, &sync.runbooks).await {
        Ok(runbooks) => runbooks,
        Err(e) => {
            eprintln!("chatops-runner catalog sync: {e}");
            return ExitCode::FAILURE;
        }
    };
    let text = catalog_sync::render(&account, &runbooks);
    match &sync.out {
        None => match crate::write_stdout(text.as_bytes()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("chatops-runner catalog sync: cannot write to stdout: {e}");
                ExitCode::FAILURE
            }
        },
        Some(path) => match write_out(path, &text, sync.force) {
            Ok(()) => {
                eprintln!(
                    "chatops-runner catalog sync: {} runbook(s) written to {}; review them and add `allow` where wanted",
                    runbooks.len(),
                    path.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                eprintln!(
                    "chatops-runner catalog sync: {} exists; nothing was written (give another FILE, or --force to replace it)",
                    path.display()
                );
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!(
                    "chatops-runner catalog sync: cannot write {}: {e}",
                    path.display()
                );
                ExitCode::FAILURE
            }
        },
    }
}

/// Writes `text` to a new file at `path`; an existing file only with `force`.
fn write_out(path: &std::path::Path, text: &str, force: bool) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

fn parse(args: &[String]) -> Result<Sync, UsageError> {
    let mut args = args.iter();
    match args.next().map(String::as_str) {
        None => return Err(UsageError::NoSubcommand),
        Some("-h" | "--help" | "help") => {
            return Ok(Sync {
                help: true,
                ..Sync::default()
            });
        }
        Some("sync") => {}
        Some(other) => return Err(UsageError::UnknownSubcommand(other.to_owned())),
    }
    let mut sync = Sync::default();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runbook" => sync.runbooks.push(
                args.next()
                    .ok_or(UsageError::MissingValue("--runbook"))?
                    .clone(),
            ),
            "--out" => {
                sync.out = Some(PathBuf::from(
                    args.next().ok_or(UsageError::MissingValue("--out"))?,
                ));
            }
            "--force" => sync.force = true,
            "-h" | "--help" => sync.help = true,
            other => return Err(UsageError::UnknownOption(other.to_owned())),
        }
    }
    Ok(sync)
}

/// The ARM client for the configured account, and the account's name.
fn open_client() -> Result<(ArmClient, String), ConfigError> {
    let env = ProcessEnv;
    let config = ArmConfig::from_env(&env)?.ok_or_else(|| {
        ConfigError::new(
            "AZURE_SUBSCRIPTION_ID, AUTOMATION_RESOURCE_GROUP, AUTOMATION_ACCOUNT",
            "are needed to name the Automation account to read",
        )
    })?;
    let kind = credential::CredentialKind::from_env(&env)?;
    let chosen = credential::choose(kind, &env)?;
    let credential = credential::build(&chosen)?;
    let client = ArmClient::new(&config, credential)
        .map_err(|e| ConfigError::new("CHATOPS_ARM_ENDPOINT", e.to_string()))?;
    Ok((client, config.account))
}

/// The runbooks named (all when none is), each with its parameters.
async fn read_runbooks(
    client: &ArmClient,
    only: &[String],
) -> Result<Vec<RunbookInfo>, chatops_runner::executor::arm::ArmError> {
    let names: Vec<String> = if only.is_empty() {
        client
            .list_runbooks()
            .await?
            .into_iter()
            .map(|rb| rb.name)
            .collect()
    } else {
        only.to_vec()
    };
    let mut runbooks = Vec::with_capacity(names.len());
    for name in names {
        runbooks.push(client.get_runbook(&name).await?);
    }
    Ok(runbooks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn an_existing_file_is_replaced_only_with_force() {
        let dir =
            std::env::temp_dir().join(format!("catalog-cli-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("runbooks.toml");
        write_out(&path, "first", false).unwrap();
        let e = write_out(&path, "second", false).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "first");
        write_out(&path, "third", true).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "third");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_command_line_is_read() {
        assert_eq!(parse(&args(&["sync"])), Ok(Sync::default()));
        assert_eq!(
            parse(&args(&[
                "sync",
                "--runbook",
                "A",
                "--runbook",
                "B",
                "--out",
                "x.toml"
            ])),
            Ok(Sync {
                runbooks: vec!["A".into(), "B".into()],
                out: Some("x.toml".into()),
                force: false,
                help: false,
            })
        );
        assert_eq!(parse(&args(&[])), Err(UsageError::NoSubcommand));
        assert_eq!(
            parse(&args(&["pull"])),
            Err(UsageError::UnknownSubcommand("pull".into()))
        );
        assert_eq!(
            parse(&args(&["sync", "--out"])),
            Err(UsageError::MissingValue("--out"))
        );
        assert_eq!(
            parse(&args(&["sync", "--all"])),
            Err(UsageError::UnknownOption("--all".into()))
        );
    }
}
