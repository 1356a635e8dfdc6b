//! Finding the one job a reference names among those the caller may see, and reading its
//! record: jobs run in the caller's channel, and the caller's own jobs anywhere. A job the
//! caller may not see is answered exactly like one that does not exist.

use super::answer::JobRefusal;
use super::reference::{self, JobRef, RefError};
use super::within_deadline;
use crate::run::Request;
use chatops_shared::records::{JobRecord, Summary, newest_first};
use std::time::Duration;
use tokio::time::Instant;

/// The record of the job `typed` names, when the caller may see it, read within `budget` (and
/// the request's deadline).
pub async fn visible_job(
    req: &Request<'_>,
    typed: &str,
    budget: Duration,
) -> Result<JobRecord, JobRefusal> {
    let reference = parse(typed)?;
    let deadline = req.deadline.min(Instant::now() + budget);
    let records = &req.state.records;
    let down = |slow| JobRefusal::RecordsDown {
        typed: Some(typed.to_owned()),
        slow,
    };
    let caller = req.caller();
    let visible = |s: &Summary| s.visible_to(caller.user_id, caller.channel_id);
    let found = records.find_where(&reference.prefix, req.newest_day(), visible);
    let mut visible: Vec<Summary> = within_deadline(deadline, found).await.map_err(down)?;
    let summary = match visible.len() {
        0 => return Err(not_found(&reference)),
        1 => visible.remove(0),
        _ => {
            newest_first(&mut visible);
            return Err(JobRefusal::Ambiguous {
                listing: super::render::candidates(typed, &visible, req.now),
            });
        }
    };
    let record = within_deadline(deadline, records.read(&summary.name))
        .await
        .map_err(down)?
        // Gone since the listing (the retention rule): as if it never was.
        .ok_or_else(|| not_found(&reference))?
        .record;
    // The listing's metadata said so; the record itself has the last word.
    if record.user_id != caller.user_id && record.channel_id != caller.channel_id {
        return Err(not_found(&reference));
    }
    Ok(record)
}

fn parse(typed: &str) -> Result<JobRef, JobRefusal> {
    reference::parse(typed).map_err(|e| match e {
        RefError::TooShort { typed } => JobRefusal::TooShort { typed },
        RefError::NotAnId { typed } => JobRefusal::NotAnId { typed },
    })
}

fn not_found(reference: &JobRef) -> JobRefusal {
    JobRefusal::NotFound {
        typed: reference.typed.clone(),
    }
}
