//! Job control from chat: `/runbook status [job]`, `stop <job>`, `rerun <job>` and
//! `history [runbook]`, answered from the job records (which the ingress only reads).
//!
//! - A job is named by its id or a prefix of at least 8 hex digits ([`reference`]), and
//!   found only among the jobs the caller may see ([`lookup`]): those run in this channel, and
//!   their own anywhere. Any other job is answered as if it did not exist.
//! - Storage is read within [`RECORDS_DEADLINE`], so the answer beats Slack's 3 s; when the
//!   records cannot be read, the caller is told to try again (runbook commands do not need
//!   them and keep working).
//! - Answers are ephemeral, except a stop, which the channel sees. Texts are in [`answer`]
//!   (short answers, refusals), [`render`] (lists, one job in full) and [`words`].
//! - [`stop`] and [`rerun`] queue job messages like a typed command; [`rerun`] goes through
//!   the very same catalog check ([`crate::run`]).

mod answer;
mod history;
mod lookup;
pub mod reference;
mod render;
mod rerun;
mod status;
mod stop;
pub(crate) mod words;

use crate::reply::Reply;
use crate::run::Request;
use answer::JobRefusal;
use chatops_shared::audit::AuditEvent;
use chatops_shared::command::Arg;
use chatops_shared::records::RecordsError;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// How long a job-control command that only reads (`status`, `history`) may spend reading
/// records, all reads together.
pub const RECORDS_DEADLINE: Duration = Duration::from_millis(1500);
/// The same for `stop` and `rerun`, which queue a message after reading: with the enqueue's
/// worst case (2.1 s, see `RetryBudget::interactive`) the answer stays inside Slack's 3 s.
pub const RECORDS_DEADLINE_BEFORE_ENQUEUE: Duration = Duration::from_millis(700);

/// A job-control word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Word {
    Status,
    Stop,
    Rerun,
    History,
}

/// The job-control word a command starts with, if it does (any case, as runbook names).
pub fn word(first: &str) -> Option<Word> {
    match first.to_lowercase().as_str() {
        "status" => Some(Word::Status),
        "stop" => Some(Word::Stop),
        "rerun" => Some(Word::Rerun),
        "history" => Some(Word::History),
        _ => None,
    }
}

impl Word {
    fn usage(self) -> &'static str {
        match self {
            Word::Status => {
                "`/runbook status` lists your jobs of the last 24 hours and the jobs running in this channel; `/runbook status <job>` shows one job in full (give its id, or at least its first 8 characters)."
            }
            Word::Stop => {
                "`/runbook stop <job>` (give the job id, or at least its first 8 characters)."
            }
            Word::Rerun => {
                "`/runbook rerun <job>` runs a job again with the same parameters (give the job id, or at least its first 8 characters)."
            }
            Word::History => {
                "`/runbook history [runbook]` lists the last 20 jobs you can see, of one runbook when you name it."
            }
        }
    }
}

/// Answers a job-control command. `args` are the words after the job-control word.
pub async fn handle(req: &Request<'_>, word: Word, args: &[Arg]) -> Reply {
    let usage = || JobRefusal::Usage {
        usage: word.usage(),
    };
    let answer: Result<Reply, JobRefusal> = match (word, one_optional_value(args)) {
        (_, Err(())) => Err(usage()),
        (Word::Status, Ok(None)) => status::list(req).await,
        (Word::Status, Ok(Some(job))) => status::one(req, job).await,
        (Word::History, Ok(runbook)) => history::list(req, runbook).await,
        (Word::Stop, Ok(Some(job))) => stop::stop(req, job).await,
        (Word::Rerun, Ok(Some(job))) => rerun::rerun(req, job).await,
        (Word::Stop | Word::Rerun, Ok(None)) => Err(usage()),
    };
    match &answer {
        Err(refusal) => {
            let (outcome, reason) = refusal.metric();
            crate::metrics::command(outcome, reason);
        }
        Ok(_) => match word {
            Word::Status => crate::metrics::command("answered", "status"),
            Word::History => crate::metrics::command("answered", "history"),
            // Counted where queued (a copy of a stop already queued is `replayed`); a rerun
            // as the command typed again would be.
            Word::Stop | Word::Rerun => {}
        },
    }
    answer.unwrap_or_else(|refusal| audited(req, word, refusal))
}

/// The reply to a refused command, recorded in the audit log when the command would have
/// changed something (`stop`, `rerun`): a denial names the rule, a mistake the reason given.
fn audited(req: &Request<'_>, word: Word, refusal: JobRefusal) -> Reply {
    if matches!(word, Word::Stop | Word::Rerun) {
        match &refusal {
            JobRefusal::StopDenied {
                record,
                lookup_problem,
            } => req.state.audit.record(AuditEvent::Denied {
                user_id: req.cmd.user_id.clone(),
                channel_id: req.cmd.channel_id.clone(),
                runbook: record.runbook.clone(),
                rule: match lookup_problem {
                    Some(_) => "usergroup_lookup",
                    None => "stop_allow",
                }
                .to_owned(),
            }),
            // Outages, not the caller's doing.
            JobRefusal::RecordsDown { .. } | JobRefusal::QueueDown { .. } => {}
            // What was typed is no job id: it may be a value meant for a parameter, perhaps a
            // secret, which the audited command masks too.
            JobRefusal::NotAnId { .. } => req.audit_rejected("not a job id".to_owned()),
            _ => req.audit_rejected(refusal.text()),
        }
    }
    refusal.into()
}

/// No argument or one value by position; anything else is a usage mistake.
fn one_optional_value(args: &[Arg]) -> Result<Option<&str>, ()> {
    match args {
        [] => Ok(None),
        [Arg::Positional(value)] => Ok(Some(value)),
        _ => Err(()),
    }
}

/// When the records reads of a command must be done: [`RECORDS_DEADLINE`] from now, and
/// within the request's own deadline (counted from its arrival).
fn deadline(req: &Request<'_>) -> Instant {
    req.deadline.min(Instant::now() + RECORDS_DEADLINE)
}

/// Runs a records read until `deadline` at most; `Err(slow)` when it failed (`false`) or
/// took too long (`true`), logged here.
async fn within_deadline<T>(
    deadline: Instant,
    read: impl Future<Output = Result<T, RecordsError>>,
) -> Result<T, bool> {
    match tokio::time::timeout_at(deadline, read).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "job records could not be read");
            Err(false)
        }
        Err(_) => {
            tracing::warn!("job records were not read within the deadline");
            Err(true)
        }
    }
}
