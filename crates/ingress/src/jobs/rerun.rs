//! `/runbook rerun <job>`: the job's runbook with its parameters, as a new job that goes through
//! exactly what the command typed again would ([`crate::run::run`]): the catalog check of today
//! (who may run it from here, which parameters it takes), a new job id from this request, and
//! the same acknowledgement. The new job's message and record name the original (`rerun_of`).

use super::answer::JobRefusal;
use super::lookup;
use crate::reply::{Refusal, Reply};
use crate::run::{self, Request};
use chatops_shared::command::{Arg, ParsedCommand};
use chatops_shared::mrkdwn::escape;
use chatops_shared::records::JobRecord;

pub async fn rerun(req: &Request<'_>, typed: &str) -> Result<Reply, JobRefusal> {
    let record = lookup::visible_job(req, typed, super::RECORDS_DEADLINE_BEFORE_ENQUEUE).await?;
    // Secret values are not kept (the record has them masked): running it again needs them
    // typed again. A secret parameter the job was run without is no obstacle.
    let given: Vec<String> = record
        .secret_params
        .iter()
        .filter(|name| record.params.contains_key(name.as_str()))
        .cloned()
        .collect();
    if !given.is_empty() {
        return Err(JobRefusal::SecretsNotKept {
            record: Box::new(record),
            given,
            command: req.cmd.command.clone(),
        });
    }
    if req.state.catalog.current().get(&record.runbook).is_none() {
        return Err(JobRefusal::RunbookGone {
            record: Box::new(record),
        });
    }
    let parsed = as_typed(&record);
    Ok(match run::run(req, &parsed, Some(record.job_id)).await {
        Ok(reply) => reply,
        Err(refusal @ Refusal::Rejected { .. }) => Reply::ephemeral(escape(&format!(
            "Cannot rerun job `{}`: {}",
            record.short_id(),
            refusal.text()
        ))),
        Err(refusal) => refusal.into(),
    })
}

/// The command as `command::parse` reads the job's runbook followed by its parameters in
/// `job::format_params` form: every value by name, in name order.
fn as_typed(record: &JobRecord) -> ParsedCommand {
    ParsedCommand {
        runbook: Some(record.runbook.clone()),
        args: record
            .params
            .iter()
            .map(|(name, value)| Arg::Named {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatops_shared::command;
    use chatops_shared::job::format_params;
    use std::collections::BTreeMap;

    #[test]
    fn a_rerun_is_the_command_typed_again() {
        let params: BTreeMap<String, String> = [
            ("env", "prod"),
            ("msg", "two words \"quoted\" and a \\ backslash"),
            ("empty", ""),
            ("eq", "a=b"),
            ("smart", "“x” ‘y’"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let record = JobRecord {
            runbook: "deploy".into(),
            params: params.clone(),
            ..sample_record()
        };
        let typed = command::parse(&format!("deploy {}", format_params(&params))).unwrap();
        assert_eq!(as_typed(&record), typed);
    }

    fn sample_record() -> JobRecord {
        serde_json::from_value(serde_json::json!({
            "schema": 1,
            "job_id": "1a2b3c4d-0000-5000-8000-000000000000",
            "runbook": "x",
            "params": {},
            "user_id": "U1",
            "user_name": "ana",
            "team_id": "T1",
            "channel_id": "C1",
            "requested_at": "2026-11-28T09:00:00Z",
            "state": "completed"
        }))
        .unwrap()
    }
}
