//! `chatops-runner output <job-id>`: prints the whole output kept for a local script's job
//! (the first `CHATOPS_OUTPUT_KEEP` bytes, see `docs/records.md`), for operators: the thread
//! and the job record show only part of a long output. The job id may be its short form (the
//! first 8 characters, as the card shows it). Storage is configured as for the runner, the
//! container by `CHATOPS_RECORDS_CONTAINER`.
//!
//! Exit codes: 0 printed, 1 no such job or no kept output, or storage failed, 2 usage or
//! configuration error.

use chatops_shared::blob::settings::BlobTarget;
use chatops_shared::blob::{self, BlobError};
use chatops_shared::config::{ConfigError, EnvSource, ProcessEnv};
use chatops_shared::credential;
use chatops_shared::queue::azure::RetryBudget;
use chatops_shared::records::{self, Records};
use std::process::ExitCode;
use time::OffsetDateTime;

const USAGE: &str = "usage: chatops-runner output <job-id>";

/// Why the records could not be opened.
#[derive(Debug, thiserror::Error)]
enum OpenError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Blob(#[from] BlobError),
}

/// Runs `chatops-runner output <args>` (the arguments after `output`).
pub async fn main(args: Vec<String>) -> ExitCode {
    let id = match args.as_slice() {
        [flag] if flag == "--help" || flag == "-h" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        [id] if is_job_id(id) => id.to_ascii_lowercase(),
        _ => {
            eprintln!(
                "chatops-runner output: name one job id (as the card shows it, e.g. 1a2b3c4d)\n{USAGE}"
            );
            return ExitCode::from(2);
        }
    };
    let records = match open(&ProcessEnv) {
        Ok(records) => records,
        Err(e) => {
            eprintln!("chatops-runner output: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let found = match records.find(&id, OffsetDateTime::now_utc().date()).await {
        Ok(found) => found,
        Err(e) => {
            eprintln!("chatops-runner output: cannot read the job records: {e}");
            return ExitCode::FAILURE;
        }
    };
    let job = match found.as_slice() {
        [job] => job,
        [] => {
            eprintln!("chatops-runner output: no job {id} in the job records");
            return ExitCode::FAILURE;
        }
        _ => {
            eprintln!(
                "chatops-runner output: {} jobs start with {id}: give more of the id",
                found.len()
            );
            return ExitCode::FAILURE;
        }
    };
    match records.read_output(&job.name).await {
        Ok(Some(bytes)) => {
            if crate::write_stdout(&bytes).is_err() {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Ok(None) => {
            eprintln!(
                "chatops-runner output: job {} has no kept output (an Automation job keeps its output in Azure Automation; a script without output keeps none)",
                job.job_id
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("chatops-runner output: cannot read the job's output: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Hex digits and dashes, as job ids are printed.
fn is_job_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 36 && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

fn open(env: &dyn EnvSource) -> Result<Records, OpenError> {
    // Patient: the whole kept output is read in one try.
    let settings = records::settings_from_env(env, RetryBudget::operator())?;
    let kind = credential::CredentialKind::from_env(env)?;
    let credential = match settings.target {
        BlobTarget::Endpoint(_) => Some(credential::build(&credential::choose(kind, env)?)?),
        BlobTarget::ConnectionString { .. } => None,
    };
    let store = blob::open(settings, credential)?;
    Ok(Records::new(store, records::retention_days_from_env(env)?))
}

#[cfg(test)]
mod tests {
    use super::is_job_id;

    #[test]
    fn job_ids_are_hex_and_dashes() {
        assert!(is_job_id("1a2b3c4d"));
        assert!(is_job_id("1a2b3c4d-0000-5000-8000-000000000000"));
        assert!(!is_job_id(""));
        assert!(!is_job_id("../x"));
    }
}
