//! Job records: one blob per job in the records container, the source of truth for what a job
//! did. The runner writes them (conditionally, so two runners can never both own a job); the
//! ingress reads them for `status` and `history`.
//!
//! - **Name**: `jobs/<yyyy-mm-dd>/<job_id>.json` ([`record_name`]), the day being the job's
//!   [`JobMessage::record_day`]: copies of one Slack request, from any ingress, name one blob.
//! - **Body**: a [`JobRecord`] as JSON. **Metadata**: what a listing needs
//!   ([`Summary`]), so `status` and `history` list a day's records in one request per 5000
//!   instead of reading each one.
//! - [`Records`]: the operations on the container (claim, read, conditional update, find by
//!   id prefix, list days, the most recent records a caller may see).

mod model;
mod store;

pub use model::{
    ExecutorRef, Holder, JobRecord, JobState, RECORD_SCHEMA, SlackMessageRef, StateChange,
    StopRequest, Summary,
};
pub use store::{Claim, Records, RecordsError, Versioned, newest_first, output_name};

use crate::blob::settings::BlobSettings;
use crate::config::{self, ConfigError, EnvSource};
use crate::job::JobMessage;
use crate::queue::retry::RetryBudget;
use time::Date;
use uuid::Uuid;

/// Default records container (`CHATOPS_RECORDS_CONTAINER`).
pub const DEFAULT_RECORDS_CONTAINER: &str = "chatops-jobs";
/// Environment variable naming the records container.
pub const RECORDS_CONTAINER_VAR: &str = "CHATOPS_RECORDS_CONTAINER";
/// Environment variable: how many days records are kept (`CHATOPS_RECORDS_RETENTION`).
pub const RECORDS_RETENTION_VAR: &str = "CHATOPS_RECORDS_RETENTION";
/// Default retention in days.
pub const DEFAULT_RETENTION_DAYS: u16 = 30;

/// `CHATOPS_RECORDS_RETENTION`: whole days, 1 to 3650; [`DEFAULT_RETENTION_DAYS`] when unset.
pub fn retention_days_from_env(env: &dyn EnvSource) -> Result<u16, ConfigError> {
    let Some(value) = config::optional(env, RECORDS_RETENTION_VAR) else {
        return Ok(DEFAULT_RETENTION_DAYS);
    };
    match value.parse::<u16>() {
        Ok(days) if (1..=3650).contains(&days) => Ok(days),
        _ => Err(ConfigError::new(
            RECORDS_RETENTION_VAR,
            format!("`{value}` is not a whole number of days from 1 to 3650"),
        )),
    }
}

/// Where the records container is: the blob settings with `CHATOPS_RECORDS_CONTAINER`.
pub fn settings_from_env(
    env: &dyn EnvSource,
    budget: RetryBudget,
) -> Result<BlobSettings, ConfigError> {
    BlobSettings::from_env(
        env,
        budget,
        RECORDS_CONTAINER_VAR,
        DEFAULT_RECORDS_CONTAINER,
    )
}

/// Prefix of every record's name.
pub const RECORDS_PREFIX: &str = "jobs/";

/// The prefix of one day's records: `jobs/2026-11-28/`.
pub fn day_prefix(day: Date) -> String {
    format!("{RECORDS_PREFIX}{}/", format_day(day))
}

/// The blob name of a job's record.
pub fn record_name(day: Date, job_id: &Uuid) -> String {
    format!("{}{}.json", day_prefix(day), job_id)
}

/// The blob name of the record of the job a message names.
pub fn record_name_of(job: &JobMessage) -> String {
    record_name(job.record_day(), &job.job_id)
}

/// `yyyy-mm-dd`.
pub fn format_day(day: Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        day.year(),
        u8::from(day.month()),
        day.day()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::memory::{Fault, MemoryStore};
    use std::collections::HashMap;
    use std::sync::Arc;

    #[tokio::test]
    async fn an_output_append_whose_answer_was_lost_counts_as_done_only_when_it_landed() {
        let store = Arc::new(MemoryStore::new());
        let records = Records::new(store.clone(), 30);
        assert!(records.create_output("r").await.unwrap());
        records
            .append_output("r", b"one\n".to_vec(), 0)
            .await
            .unwrap();
        store.fail_next(&[Fault::AppliedAnswerLost]);
        records
            .append_output("r", b"two\n".to_vec(), 4)
            .await
            .unwrap();
        store.fail_next(&[Fault::Unavailable]);
        assert!(
            records
                .append_output("r", b"three\n".to_vec(), 8)
                .await
                .is_err()
        );
        records
            .append_output("r", b"four\n".to_vec(), 8)
            .await
            .unwrap();
        assert_eq!(
            records.read_output("r").await.unwrap().unwrap_or_default(),
            b"one\ntwo\nfour\n"
        );
    }

    #[test]
    fn retention_is_whole_days_with_a_default() {
        let env = |v: &'static str| HashMap::from([(RECORDS_RETENTION_VAR, v)]);
        assert_eq!(retention_days_from_env(&env("")), Ok(30));
        assert_eq!(retention_days_from_env(&env("7")), Ok(7));
        for bad in ["0", "-1", "30d", "1.5", "4000"] {
            let e = retention_days_from_env(&env(bad)).unwrap_err();
            assert_eq!(e.var, RECORDS_RETENTION_VAR);
            assert!(e.problem.contains(bad), "{e}");
        }
    }
}
