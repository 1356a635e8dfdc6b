//! What a job record holds ([`JobRecord`]) and what a listing tells of it ([`Summary`]).
//!
//! The record's JSON is read by later versions of the services and by operators' tools: fields
//! are added, never renamed; readers ignore fields they do not know.

use super::format_day;
use crate::blob::{ETag, Listed, Metadata};
use crate::job::{JobMessage, short_id};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;
use uuid::Uuid;

/// The record format this build writes.
pub const RECORD_SCHEMA: u32 = 1;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// A runner took the job and has not started it yet.
    Pending,
    /// Started (or found started) and followed by the runner in `holder`.
    Running,
    Completed,
    Failed,
    Stopped,
    /// Azure Automation suspended the job.
    Suspended,
    TimedOut,
    /// The runner's re-check of the catalog and the caller said no.
    Refused,
    /// Not started: the request was too old when a runner took it.
    Expired,
    /// Its runner died while it ran; a local script was killed with it.
    Interrupted,
}

impl JobState {
    /// The job will not change any more.
    pub fn is_final(self) -> bool {
        !matches!(self, JobState::Pending | JobState::Running)
    }

    /// The word used in records, metadata and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Stopped => "stopped",
            JobState::Suspended => "suspended",
            JobState::TimedOut => "timed_out",
            JobState::Refused => "refused",
            JobState::Expired => "expired",
            JobState::Interrupted => "interrupted",
        }
    }

    pub fn parse(word: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(word.to_owned())).ok()
    }
}

/// One change of state, in the record's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateChange {
    pub state: JobState,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The runner that made the change.
    pub runner: String,
    /// Why, in words, when there is more to say than the state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The runner that holds a job and when it last said it is alive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The runner's id (host name and process id, see the runner's `runner_id`).
    pub runner: String,
    #[serde(with = "time::serde::rfc3339")]
    pub heartbeat_at: OffsetDateTime,
    /// How long after its last heartbeat the holder counts as dead, by its own settings (its
    /// visibility timeout), so that runners with other settings (a rollout that changes
    /// `CHATOPS_VISIBILITY_TIMEOUT`) judge it alike. Absent in a record an older runner wrote,
    /// or before the holder's first beat: then each reader uses its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_after_ms: Option<u64>,
}

impl Holder {
    /// `runner`, alive at `now`, dead once its heartbeat is `dead_after` old.
    pub fn new(runner: &str, now: OffsetDateTime, dead_after: std::time::Duration) -> Self {
        let mut holder = Holder {
            runner: runner.to_owned(),
            heartbeat_at: now,
            dead_after_ms: None,
        };
        holder.beat(now, dead_after);
        holder
    }

    /// A heartbeat at `now`, with the holder's own `dead_after`.
    pub fn beat(&mut self, now: OffsetDateTime, dead_after: std::time::Duration) {
        self.heartbeat_at = now;
        self.dead_after_ms = Some(u64::try_from(dead_after.as_millis()).unwrap_or(u64::MAX));
    }
}

/// What the executor knows the job by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ExecutorRef {
    /// An Azure Automation job, by name.
    Automation { job_name: String },
    /// A local script: the host it ran on and its process group.
    Local { host: String, pgid: i32 },
}

/// A request to stop the job, written for the runner that holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopRequest {
    /// Slack user ID of who asked.
    pub by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The job id of the stop message.
    pub stop_job_id: Uuid,
}

/// The Slack message a job is shown in (for the bot-token experience).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlackMessageRef {
    pub channel: String,
    pub ts: String,
}

/// One job's record. See the module doc.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// [`RECORD_SCHEMA`].
    pub schema: u32,
    pub job_id: Uuid,
    pub runbook: String,
    /// Parameters as the requester gave them (validated by the ingress), secret values
    /// masked ([`JobMessage::shown_params`]).
    pub params: BTreeMap<String, String>,
    /// The names of the secret parameters, whose values are not kept (so a rerun must ask
    /// for them again).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_params: Vec<String>,
    pub user_id: String,
    pub user_name: String,
    pub team_id: String,
    pub channel_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_name: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    /// The job this one runs again (`/runbook rerun`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<Uuid>,
    pub state: JobState,
    /// Every change of state, oldest first.
    #[serde(default)]
    pub history: Vec<StateChange>,
    /// Who follows the job now; cleared once its final status was delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<Holder>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<ExecutorRef>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub started_at: Option<OffsetDateTime>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub ended_at: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<StopRequest>,
    /// What went wrong, in the user's terms, when the job did not complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The end of the job's output (at most [`OUTPUT_TAIL_MAX`] bytes).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub output_tail: String,
    /// The final status was delivered to Slack: a later delivery of the message is deleted
    /// without a new post.
    #[serde(default)]
    pub reported: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack_message: Option<SlackMessageRef>,
}

/// The most of a job's output a record keeps: its end.
pub const OUTPUT_TAIL_MAX: usize = 16 * 1024;

impl JobRecord {
    /// A new record for a job a runner takes, in state [`JobState::Pending`], held by `runner`.
    pub fn new(job: &JobMessage, runner: &str, now: OffsetDateTime) -> Self {
        JobRecord {
            schema: RECORD_SCHEMA,
            job_id: job.job_id,
            runbook: job.runbook.clone(),
            params: job.shown_params(),
            secret_params: job.secret_params.clone(),
            user_id: job.user_id.clone(),
            user_name: job.user_name.clone(),
            team_id: job.team_id.clone(),
            channel_id: job.channel_id.clone(),
            channel_name: job.channel_name.clone(),
            requested_at: job.requested_at,
            rerun_of: job.rerun_of,
            state: JobState::Pending,
            history: vec![StateChange {
                state: JobState::Pending,
                at: now,
                runner: runner.to_owned(),
                note: None,
            }],
            holder: Some(Holder {
                runner: runner.to_owned(),
                heartbeat_at: now,
                dead_after_ms: None,
            }),
            executor: None,
            started_at: None,
            ended_at: None,
            stop: None,
            error: None,
            output_tail: String::new(),
            reported: false,
            slack_message: None,
        }
    }

    /// Moves to `state`, recording the change (nothing when the state is the same).
    pub fn set_state(
        &mut self,
        state: JobState,
        runner: &str,
        at: OffsetDateTime,
        note: Option<String>,
    ) {
        if self.state == state && note.is_none() {
            return;
        }
        self.state = state;
        self.history.push(StateChange {
            state,
            at,
            runner: runner.to_owned(),
            note,
        });
        if state.is_final() {
            self.ended_at.get_or_insert(at);
        }
    }

    /// Keeps the end of `output`, cut at a character boundary.
    pub fn set_output_tail(&mut self, output: &str) {
        let mut start = output.len().saturating_sub(OUTPUT_TAIL_MAX);
        while !output.is_char_boundary(start) {
            start += 1;
        }
        self.output_tail = output[start..].to_owned();
    }

    /// The holder's heartbeat is older than the holder's own `dead_after_ms`, or, when the
    /// record does not say, than `dead_after` (the reader's): its runner is gone.
    pub fn holder_is_dead(&self, now: OffsetDateTime, dead_after: std::time::Duration) -> bool {
        match &self.holder {
            None => true,
            Some(holder) => {
                let limit = holder
                    .dead_after_ms
                    .map_or(dead_after, std::time::Duration::from_millis);
                now - holder.heartbeat_at > limit
            }
        }
    }

    /// The metadata a listing gives back as a [`Summary`].
    pub fn metadata(&self) -> Metadata {
        let mut m = Metadata::new();
        m.insert("state".into(), self.state.as_str().into());
        m.insert("runbook".into(), ascii(&self.runbook));
        m.insert("user".into(), ascii(&self.user_id));
        m.insert("channel".into(), ascii(&self.channel_id));
        m.insert(
            "requested".into(),
            self.requested_at.unix_timestamp().to_string(),
        );
        if let Some(ended) = self.ended_at {
            m.insert("ended".into(), ended.unix_timestamp().to_string());
        }
        if let Some(started) = self.started_at {
            m.insert("started".into(), started.unix_timestamp().to_string());
        }
        m
    }

    /// The short id shown in messages.
    pub fn short_id(&self) -> String {
        short_id(&self.job_id)
    }

    /// The UTC day of the record's name.
    pub fn day_label(&self) -> String {
        format_day(self.requested_at.date())
    }
}

/// Metadata values travel as HTTP headers: anything outside printable ASCII is replaced.
/// Catalog keys and Slack IDs are ASCII already.
fn ascii(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// What a listing tells of a record, without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub name: String,
    pub etag: ETag,
    pub job_id: Uuid,
    pub state: JobState,
    pub runbook: String,
    pub user_id: String,
    pub channel_id: String,
    pub requested_at: OffsetDateTime,
    pub started_at: Option<OffsetDateTime>,
    pub ended_at: Option<OffsetDateTime>,
}

impl Summary {
    /// Reads a listed blob; `None` when it is not a record this build understands.
    pub fn from_listed(listed: &Listed) -> Option<Self> {
        let m = &listed.metadata;
        let id = listed
            .name
            .rsplit('/')
            .next()?
            .strip_suffix(".json")?
            .parse()
            .ok()?;
        let time = |key: &str| -> Option<OffsetDateTime> {
            OffsetDateTime::from_unix_timestamp(m.get(key)?.parse().ok()?).ok()
        };
        Some(Summary {
            name: listed.name.clone(),
            etag: listed.etag.clone(),
            job_id: id,
            state: JobState::parse(m.get("state")?)?,
            runbook: m.get("runbook")?.clone(),
            user_id: m.get("user")?.clone(),
            channel_id: m.get("channel")?.clone(),
            requested_at: time("requested")?,
            started_at: time("started"),
            ended_at: time("ended"),
        })
    }

    pub fn short_id(&self) -> String {
        short_id(&self.job_id)
    }

    /// What a caller may see: jobs run in their channel, and their own jobs anywhere.
    pub fn visible_to(&self, user_id: &str, channel_id: &str) -> bool {
        self.user_id == user_id || self.channel_id == channel_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::tests::sample;

    #[test]
    fn a_listing_gives_back_the_summary_of_a_record() {
        let job = sample();
        let now = OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let mut record = JobRecord::new(&job, "r1", now);
        record.started_at = Some(now);
        record.set_state(JobState::Completed, "r1", now, None);
        let listed = Listed {
            name: super::super::record_name_of(&job),
            etag: ETag::new("\"0x1\""),
            metadata: record.metadata(),
        };
        let summary = Summary::from_listed(&listed);
        assert_eq!(
            summary
                .as_ref()
                .map(|s| (s.job_id, s.state, s.ended_at, s.runbook.as_str())),
            Some((job.job_id, JobState::Completed, Some(now), "restart-web"))
        );
        assert_eq!(listed.etag, ETag("0x1".into()));
    }

    #[test]
    fn a_holder_is_judged_dead_by_its_own_timeout_when_the_record_has_it() {
        let now = OffsetDateTime::now_utc();
        let ten_ago = now - time::Duration::seconds(10);
        let mut record = JobRecord::new(&sample(), "r1", ten_ago);
        let two = std::time::Duration::from_secs(2);
        // Written before the holder's first beat (or by an older runner): the reader's own.
        assert!(record.holder_is_dead(now, two));
        let mut holder = Holder::new("r1", ten_ago, std::time::Duration::from_secs(60));
        record.holder = Some(holder.clone());
        assert!(
            !record.holder_is_dead(now, two),
            "alive for 60 s by its own"
        );
        holder.beat(ten_ago, std::time::Duration::from_secs(5));
        record.holder = Some(holder);
        assert!(record.holder_is_dead(now, std::time::Duration::from_secs(600)));
        // Older records read as before.
        let json = r#"{"runner":"r0","heartbeat_at":"2026-01-01T00:00:00Z"}"#;
        let old: Holder = serde_json::from_str(json).unwrap();
        assert_eq!(old.dead_after_ms, None);
    }

    #[test]
    fn a_final_state_sets_the_end_once_and_keeps_the_holder_until_reported() {
        let now = OffsetDateTime::now_utc();
        let mut record = JobRecord::new(&sample(), "r1", now);
        assert!(!record.holder_is_dead(now, std::time::Duration::from_secs(30)));
        record.set_state(JobState::Running, "r1", now, None);
        record.set_state(JobState::Failed, "r1", now, Some("exit 1".into()));
        assert!(
            record.holder.is_some(),
            "its runner still has to post the end"
        );
        assert_eq!(record.ended_at, Some(now));
        assert_eq!(
            record.history.iter().map(|c| c.state).collect::<Vec<_>>(),
            [JobState::Pending, JobState::Running, JobState::Failed]
        );
    }

    #[test]
    fn the_output_tail_keeps_the_end_on_a_character_boundary() {
        let mut record = JobRecord::new(&sample(), "r1", OffsetDateTime::now_utc());
        let output = format!("{}{}", "€".repeat(OUTPUT_TAIL_MAX), "end");
        record.set_output_tail(&output);
        assert!(record.output_tail.len() <= OUTPUT_TAIL_MAX);
        assert!(record.output_tail.ends_with("€end"));
    }
}
