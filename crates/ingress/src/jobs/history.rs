//! `/runbook history [runbook]`: the last [`HISTORY_LEN`] jobs the caller may see, newest first,
//! listing day by day back over the retention until that many are found (one request per day,
//! and only as many days as it takes).

use super::answer::JobRefusal;
use super::{deadline, render, within_deadline};
use crate::reply::Reply;
use crate::run::Request;

/// How many jobs `history` shows.
pub const HISTORY_LEN: usize = 20;

pub async fn list(req: &Request<'_>, runbook: Option<&str>) -> Result<Reply, JobRefusal> {
    let filter = runbook.map(|r| r.trim().to_lowercase());
    let caller = req.caller();
    let records = &req.state.records;
    let keep = |s: &chatops_shared::records::Summary| {
        s.visible_to(caller.user_id, caller.channel_id)
            && filter.as_ref().is_none_or(|r| s.runbook == *r)
    };
    let mut found = within_deadline(
        deadline(req),
        records.recent(req.newest_day(), HISTORY_LEN, keep),
    )
    .await
    .map_err(|slow| JobRefusal::RecordsDown { typed: None, slow })?;
    found.truncate(HISTORY_LEN);
    Ok(Reply::ephemeral(render::history_list(
        &found,
        filter.as_deref(),
        records.retention_days(),
        req.now,
    )))
}
