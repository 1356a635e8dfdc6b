//! `/runbook status`: the caller's jobs of the last 24 hours and every job still running in
//! this channel, from the listings' metadata alone (one request per day listed); and
//! `/runbook status <job>`: one job in full, from its record.

use super::answer::JobRefusal;
use super::{deadline, lookup, render, within_deadline};
use crate::reply::Reply;
use crate::run::Request;
use chatops_shared::catalog::Catalog;
use chatops_shared::records::{Summary, newest_first};
use time::{Date, OffsetDateTime};

/// How far back "your jobs" go.
const YOUR_JOBS: time::Duration = time::Duration::DAY;

/// The list.
pub async fn list(req: &Request<'_>) -> Result<Reply, JobRefusal> {
    let now = req.now;
    // A job still running started at most the longest timeout ago (the runner stops it then).
    let lookback = running_lookback(&req.state.catalog.current()).max(YOUR_JOBS);
    let running_since = now.checked_sub(lookback).unwrap_or(now - YOUR_JOBS);
    let your_since = now - YOUR_JOBS;
    let records = &req.state.records;
    let newest = now.replace_date(req.newest_day());
    let days = days_between(running_since, newest, records.retention_days());
    let listed = within_deadline(deadline(req), records.list_days(&days))
        .await
        .map_err(|slow| JobRefusal::RecordsDown { typed: None, slow })?;
    let caller = req.caller();
    let mut shown: Vec<Summary> = listed
        .into_iter()
        .filter(|s| {
            let yours = s.user_id == caller.user_id && s.requested_at >= your_since;
            let running_here = s.channel_id == caller.channel_id
                && !s.state.is_final()
                && s.requested_at >= running_since;
            yours || running_here
        })
        .collect();
    newest_first(&mut shown);
    Ok(Reply::ephemeral(render::status_list(&shown, now)))
}

/// One job.
pub async fn one(req: &Request<'_>, typed: &str) -> Result<Reply, JobRefusal> {
    let record = lookup::visible_job(req, typed, super::RECORDS_DEADLINE).await?;
    Ok(Reply::ephemeral(render::job_in_full(&record, req.now)))
}

/// The longest `timeout` in the catalog.
fn running_lookback(catalog: &Catalog) -> time::Duration {
    let longest = catalog
        .runbooks
        .values()
        .map(|rb| rb.timeout)
        .max()
        .unwrap_or_default();
    time::Duration::try_from(longest).unwrap_or(time::Duration::MAX)
}

/// The UTC days from `since`'s to `until`'s, newest first, at most `max_days` of them.
fn days_between(since: OffsetDateTime, until: OffsetDateTime, max_days: u16) -> Vec<Date> {
    let first = since.to_offset(time::UtcOffset::UTC).date();
    let mut day = until.to_offset(time::UtcOffset::UTC).date();
    let mut days = vec![day];
    while day > first && days.len() < usize::from(max_days) {
        match day.previous_day() {
            Some(previous) => {
                day = previous;
                days.push(day);
            }
            None => break,
        }
    }
    days
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn the_last_24_hours_span_today_and_yesterday() {
        let now = datetime!(2026-11-28 09:30 UTC);
        let days = days_between(now - YOUR_JOBS, now, 30);
        assert_eq!(
            days,
            [
                time::macros::date!(2026 - 11 - 28),
                time::macros::date!(2026 - 11 - 27)
            ]
        );
        let week = days_between(now - time::Duration::days(7), now, 30);
        assert_eq!(week.len(), 8);
        assert_eq!(days_between(now - time::Duration::days(7), now, 3).len(), 3);
    }
}
