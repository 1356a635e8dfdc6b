//! The short job-control answers: every refusal, and the in-channel note that someone asked to
//! stop a job. Each names the job (as typed, or its short id) and says what to do instead.

use super::words::{short, state_word, user, what};
use crate::reply::Reply;
use chatops_shared::mrkdwn::{escape, inline_code};
use chatops_shared::records::{JobRecord, JobState};

/// Why a job-control command gets no answer but an explanation. Each is ephemeral.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobRefusal {
    /// Wrong arguments for the word; `usage` is its usage line.
    Usage { usage: &'static str },
    /// Fewer than 8 hex digits.
    TooShort { typed: String },
    /// Not a job id at all.
    NotAnId { typed: String },
    /// No job by that id that the caller may see (whether one exists is not told).
    NotFound { typed: String },
    /// Several jobs the caller may see start with that id: the listing of them.
    Ambiguous { listing: String },
    /// The records could not be read in time.
    /// (`slow`: the search did not finish in time, the storage answering all the while.)
    RecordsDown { typed: Option<String>, slow: bool },
    /// The caller is neither who started the job nor named by the runbook's `stop_allow`.
    StopDenied {
        record: Box<JobRecord>,
        /// Why the caller's user groups could not be checked, when that is why.
        lookup_problem: Option<String>,
    },
    /// The job has ended already.
    AlreadyEnded { record: Box<JobRecord> },
    /// The queue did not take the stop (`deadline`: did not confirm it in time).
    QueueDown { short_id: String, deadline: bool },
    /// A rerun of a job whose runbook is no longer in the catalog.
    RunbookGone { record: Box<JobRecord> },
    /// A rerun of a job that was given secret values (`given`, by parameter), which are not kept.
    SecretsNotKept {
        given: Vec<String>,
        record: Box<JobRecord>,
        command: String,
    },
}

impl JobRefusal {
    /// The answer, as mrkdwn (everything from users and records escaped).
    pub fn text(&self) -> String {
        match self {
            JobRefusal::Usage { usage } => format!("Usage: {usage}"),
            JobRefusal::TooShort { typed } => format!(
                "`{}` is too short: give at least 8 characters of the job id, as shown in status messages (like `1a2b3c4d`).",
                typed_id(typed)
            ),
            JobRefusal::NotAnId { typed } => format!(
                "`{}` is not a job id: give the job id, or at least its first 8 characters, as shown in status messages (like `1a2b3c4d`). `/runbook status` lists your jobs.",
                typed_id(typed)
            ),
            JobRefusal::NotFound { typed } => format!(
                "There is no job `{}` that you can see (jobs run in this channel, and yours anywhere). A job just queued shows once a runner has taken it up, usually within seconds. `/runbook status` and `/runbook history` list them.",
                typed_id(typed)
            ),
            JobRefusal::Ambiguous { listing } => listing.clone(),
            JobRefusal::RecordsDown { typed, slow: false } => {
                let which = typed
                    .as_deref()
                    .map(|t| format!(" (looking for job `{}`)", typed_id(t)))
                    .unwrap_or_default();
                format!(
                    ":warning: Job records cannot be read right now{which}. Please try again in a minute; runbook commands still work."
                )
            }
            JobRefusal::RecordsDown {
                typed: Some(typed),
                slow: true,
            } => format!(
                ":hourglass: Looking for job `{}` took too long: the job records answered slowly, or the job is old (the search goes back day by day from today). Please try again in a minute, or find it with `/runbook status` or `/runbook history <runbook>`.",
                typed_id(typed)
            ),
            JobRefusal::RecordsDown {
                typed: None,
                slow: true,
            } => ":hourglass: Reading the job records took too long. Please try again in a minute; runbook commands still work.".to_owned(),
            JobRefusal::StopDenied {
                record,
                lookup_problem: Some(why),
            } => format!(
                "Could not stop job {} ({}): your user groups could not be checked ({}), and `stop_allow` names you only through a user group. Nothing was changed. Please try again in a minute.",
                short(&record.job_id),
                what(&record.runbook, &record.params),
                escape(why)
            ),
            JobRefusal::StopDenied { record, .. } => format!(
                "You may not stop job {} ({}): only who started it ({}) and the people the runbook's `stop_allow` names may stop it. Ask one of them, or an admin to add you to `stop_allow`.",
                short(&record.job_id),
                what(&record.runbook, &record.params),
                user(&record.user_id)
            ),
            JobRefusal::AlreadyEnded { record } => format!(
                "Job {} ({}) {} ({}); there is nothing to stop.",
                short(&record.job_id),
                what(&record.runbook, &record.params),
                // Without a start, it never ran; but for `Interrupted`, whose start mark may
                // have been all that was written.
                if record.started_at.is_none() && record.state != JobState::Interrupted {
                    "never started"
                } else {
                    "already ended"
                },
                state_word(record.state)
            ),
            JobRefusal::QueueDown {
                short_id,
                deadline: false,
            } => format!(
                ":warning: Could not ask to stop job `{short_id}` right now: the job queue did not answer. Nothing was changed. Please try again in a minute."
            ),
            JobRefusal::QueueDown {
                short_id,
                deadline: true,
            } => format!(
                ":warning: Could not confirm the stop of job `{short_id}` in time: the job queue was slow. It may still be stopped; check `/runbook status {short_id}` in a minute before asking again."
            ),
            JobRefusal::RunbookGone { record } => format!(
                "Cannot rerun job {}: `{}` is no longer in the catalog. `/runbook help` lists the runbooks you may run.",
                short(&record.job_id),
                escape(&inline_code(&record.runbook))
            ),
            JobRefusal::SecretsNotKept {
                record,
                given,
                command,
            } => escape(&format!(
                "Cannot rerun job `{}`: its secret parameters ({}) are not kept. Run `{} {}` again with their values.",
                record.short_id(),
                given.join(", "),
                command,
                record.runbook,
            )),
        }
    }

    /// What it counts as in `chatops_commands_total`: `outcome` and `reason`.
    pub fn metric(&self) -> (&'static str, &'static str) {
        match self {
            JobRefusal::Usage { .. } => ("rejected", "usage"),
            JobRefusal::TooShort { .. } | JobRefusal::NotAnId { .. } => ("rejected", "bad_job_id"),
            JobRefusal::NotFound { .. } => ("rejected", "unknown_job"),
            JobRefusal::Ambiguous { .. } => ("rejected", "ambiguous_job"),
            JobRefusal::AlreadyEnded { .. } => ("rejected", "already_ended"),
            JobRefusal::SecretsNotKept { .. } => ("rejected", "secrets_not_kept"),
            JobRefusal::RunbookGone { .. } => ("rejected", "runbook_gone"),
            JobRefusal::StopDenied {
                lookup_problem: Some(_),
                ..
            } => ("denied", "groups_unavailable"),
            JobRefusal::StopDenied { .. } => ("denied", "stop_allow"),
            JobRefusal::RecordsDown { slow: false, .. } => ("failed", "records_unavailable"),
            JobRefusal::RecordsDown { slow: true, .. } => ("failed", "records_slow"),
            JobRefusal::QueueDown { deadline: true, .. } => ("failed", "queue_deadline"),
            JobRefusal::QueueDown { .. } => ("failed", "queue_unavailable"),
        }
    }
}

impl From<JobRefusal> for Reply {
    fn from(refusal: JobRefusal) -> Self {
        Reply::ephemeral(refusal.text())
    }
}

/// In the channel: someone asked to stop a job.
/// The channel the job ran in sees who asked; a stop sent from elsewhere (the caller's own job,
/// stopped from another channel) is answered to the caller only, so that the job's runbook and
/// parameters are not shown where it did not run.
pub fn stop_asked(stopper: &str, channel_id: &str, record: &JobRecord) -> Reply {
    let text = format!(
        ":octagonal_sign: {} asked to stop job {} ({})",
        user(stopper),
        short(&record.job_id),
        what(&record.runbook, &record.params)
    );
    if record.channel_id == channel_id {
        Reply::in_channel(text)
    } else {
        Reply::ephemeral(text)
    }
}

/// What the user typed as a job id, safe inside an inline code span.
fn typed_id(typed: &str) -> String {
    super::words::head(&escape(&inline_code(typed.trim())), 80)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> JobRecord {
        serde_json::from_value(serde_json::json!({
            "schema": 1,
            "job_id": "1a2b3c4d-0000-5000-8000-000000000000",
            "runbook": "deploy",
            "params": {"env": "<!here>"},
            "user_id": "UALICE",
            "user_name": "alice",
            "team_id": "T1",
            "channel_id": "COPS",
            "requested_at": "2026-11-28T09:00:00Z",
            "state": "timed_out"
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn every_refusal_is_ephemeral_names_the_job_and_escapes_it() {
        let typed = "<!channel>`x";
        let refusals = [
            JobRefusal::TooShort {
                typed: typed.into(),
            },
            JobRefusal::NotAnId {
                typed: typed.into(),
            },
            JobRefusal::NotFound {
                typed: typed.into(),
            },
            JobRefusal::RecordsDown {
                typed: Some(typed.into()),
                slow: false,
            },
            JobRefusal::RecordsDown {
                typed: Some(typed.into()),
                slow: true,
            },
        ];
        for refusal in refusals {
            let reply = Reply::from(refusal.clone());
            assert_eq!(reply.response_type, crate::reply::ResponseType::Ephemeral);
            assert!(
                reply.text.contains("`&lt;!channel&gt;'x`"),
                "{}",
                reply.text
            );
        }
        for refusal in [
            JobRefusal::StopDenied {
                record: Box::new(record()),
                lookup_problem: None,
            },
            JobRefusal::StopDenied {
                record: Box::new(record()),
                lookup_problem: Some("Slack answered missing_scope".into()),
            },
            JobRefusal::AlreadyEnded {
                record: Box::new(record()),
            },
            JobRefusal::QueueDown {
                short_id: "1a2b3c4d".into(),
                deadline: false,
            },
        ] {
            let reply = Reply::from(refusal);
            assert_eq!(reply.response_type, crate::reply::ResponseType::Ephemeral);
            assert!(reply.text.contains("`1a2b3c4d`"), "{}", reply.text);
            assert!(!reply.text.contains("<!here>"), "{}", reply.text);
        }
    }

    #[test]
    fn the_answers_say_what_to_do() {
        let too_short = JobRefusal::TooShort {
            typed: "1a2b".into(),
        };
        assert_eq!(
            too_short.text(),
            "`1a2b` is too short: give at least 8 characters of the job id, as shown in status messages (like `1a2b3c4d`)."
        );
        let mut started = record();
        started.started_at = Some(started.requested_at);
        let ended = JobRefusal::AlreadyEnded {
            record: Box::new(started),
        };
        assert_eq!(
            ended.text(),
            "Job `1a2b3c4d` (*deploy* `env=&lt;!here&gt;`) already ended (timed out); there is nothing to stop."
        );
        let never = JobRefusal::AlreadyEnded {
            record: Box::new(record()),
        };
        assert_eq!(
            never.text(),
            "Job `1a2b3c4d` (*deploy* `env=&lt;!here&gt;`) never started (timed out); there is nothing to stop."
        );
        let asked = stop_asked("UBOB", "COPS", &record());
        assert_eq!(asked.response_type, crate::reply::ResponseType::InChannel);
        assert_eq!(
            asked.text,
            ":octagonal_sign: <@UBOB> asked to stop job `1a2b3c4d` (*deploy* `env=&lt;!here&gt;`)"
        );
        // From another channel: only the caller sees it, not the channel it was sent from.
        let elsewhere = stop_asked("UBOB", "CRANDOM", &record());
        assert_eq!(
            elsewhere.response_type,
            crate::reply::ResponseType::Ephemeral
        );
    }
}
