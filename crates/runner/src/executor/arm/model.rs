//! What ARM answers about jobs, read leniently: [`Job`], [`JobStatus`], [`StreamRecord`] and
//! [`CreateResult`].

use serde_json::Value;
use time::format_description::well_known::{Iso8601, Rfc3339};
use time::{OffsetDateTime, PrimitiveDateTime};

/// A job's status as Automation reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobStatus {
    New,
    /// Held back by Automation until the account has a free slot (its concurrent-jobs limit).
    Queued,
    Activating,
    Running,
    Completed,
    Failed,
    Stopped,
    Blocked,
    Suspended,
    Disconnected,
    Suspending,
    Stopping,
    Resuming,
    Removing,
    /// A status this client does not know (or none at all).
    Other(String),
}

impl JobStatus {
    pub fn parse(s: &str) -> Self {
        use JobStatus::*;
        let known = [
            New,
            Queued,
            Activating,
            Running,
            Completed,
            Failed,
            Stopped,
            Blocked,
            Suspended,
            Disconnected,
            Suspending,
            Stopping,
            Resuming,
            Removing,
        ];
        known
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s.trim()))
            .unwrap_or_else(|| Other(s.trim().to_owned()))
    }

    pub fn as_str(&self) -> &str {
        match self {
            JobStatus::New => "New",
            JobStatus::Queued => "Queued",
            JobStatus::Activating => "Activating",
            JobStatus::Running => "Running",
            JobStatus::Completed => "Completed",
            JobStatus::Failed => "Failed",
            JobStatus::Stopped => "Stopped",
            JobStatus::Blocked => "Blocked",
            JobStatus::Suspended => "Suspended",
            JobStatus::Disconnected => "Disconnected",
            JobStatus::Suspending => "Suspending",
            JobStatus::Stopping => "Stopping",
            JobStatus::Resuming => "Resuming",
            JobStatus::Removing => "Removing",
            JobStatus::Other(s) => s,
        }
    }

    /// Ends the job for this runner: Completed, Failed, Stopped, and Suspended (which waits for a
    /// resume that nobody sends).
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Stopped | JobStatus::Suspended
        )
    }

    /// The job has left the queue of jobs waiting for a sandbox.
    pub fn has_started(&self) -> bool {
        !matches!(
            self,
            JobStatus::New | JobStatus::Queued | JobStatus::Activating | JobStatus::Other(_)
        )
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An Automation job, as far as the runner cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub status: JobStatus,
    pub status_details: Option<String>,
    pub creation_time: Option<OffsetDateTime>,
    pub start_time: Option<OffsetDateTime>,
    pub end_time: Option<OffsetDateTime>,
    /// Why the job failed or was suspended, as Automation puts it.
    pub exception: Option<String>,
}

impl Job {
    /// Reads a job resource; unknown fields are ignored, odd values read as absent.
    pub(super) fn from_json(value: &Value) -> Self {
        let props = value.get("properties").unwrap_or(&Value::Null);
        let text = |key: &str| {
            props
                .get(key)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        Job {
            status: JobStatus::parse(&text("status").unwrap_or_default()),
            status_details: text("statusDetails"),
            creation_time: parse_time(props.get("creationTime")),
            start_time: parse_time(props.get("startTime")),
            end_time: parse_time(props.get("endTime")),
            exception: text("exception"),
        }
    }
}

/// One record of a job's streams (Output, Error, Warning…).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRecord {
    /// `jobStreamId`, for [`ArmClient::get_stream`](super::ArmClient::get_stream).
    pub id: String,
    /// A shortened text; lists carry only this.
    pub summary: Option<String>,
    /// The whole text; only [`ArmClient::get_stream`](super::ArmClient::get_stream) fills it.
    pub stream_text: Option<String>,
}

impl StreamRecord {
    pub(super) fn from_json(value: &Value) -> Self {
        let props = value.get("properties").unwrap_or(&Value::Null);
        let text = |key: &str| {
            props
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
                .map(str::to_owned)
        };
        let id = text("jobStreamId")
            .or_else(|| {
                value
                    .get("id")
                    .and_then(Value::as_str)
                    .and_then(|id| id.rsplit('/').next())
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        StreamRecord {
            id,
            summary: text("summary"),
            stream_text: text("streamText"),
        }
    }
}

/// Reads an RFC 3339 time, or an ISO 8601 one with or without offset (UTC assumed); .NET's
/// `DateTime.MinValue` (year 1) and anything else unreadable count as absent.
fn parse_time(value: Option<&Value>) -> Option<OffsetDateTime> {
    let s = value?.as_str()?.trim();
    let time = OffsetDateTime::parse(s, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(s, &Iso8601::DEFAULT))
        .or_else(|_| PrimitiveDateTime::parse(s, &Iso8601::DEFAULT).map(|t| t.assume_utc()))
        .ok()?;
    (time.year() > 1).then_some(time)
}

/// The answer to a job PUT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateResult {
    Created(Job),
    /// A job with this name exists: it was started before (by this or another runner).
    AlreadyExists,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_jobs_leniently() {
        let v = json!({
            "name": "j1",
            "properties": {
                "runbook": {"name": "Hello"},
                "status": "running",
                "creationTime": "2024-05-01T10:00:00.1234567+00:00",
                "startTime": "2024-05-01T10:00:05",
                "endTime": "0001-01-01T00:00:00+00:00",
                "exception": "",
                "somethingNew": 42
            }
        });
        let job = Job::from_json(&v);
        assert_eq!(job.status, JobStatus::Running);
        assert!(job.creation_time.is_some() && job.start_time.is_some());
        assert_eq!(job.end_time, None);
        assert_eq!(job.exception, None);
        assert_eq!(JobStatus::parse("Weird"), JobStatus::Other("Weird".into()));
        assert_eq!(JobStatus::parse("queued"), JobStatus::Queued);
        assert!(!JobStatus::Queued.has_started());
    }
}
