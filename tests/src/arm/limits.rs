//! Azure Automation's own limits and job durations, as the double models them (Azure's
//! "Automation limits" page, `automation-limits-quotas`):
//!
//! - **Concurrent running jobs per account**: 50 (Enterprise, CSP), 10 (pay-as-you-go,
//!   sponsored, MSDN), 5 (free trial, students) — [`Offer`]. A job created beyond the limit is
//!   held back in status `Queued` (the portal's "waiting for resources") and admitted, oldest
//!   first, when a running job ends; it then runs its [`Script`](super::Script) as if new.
//! - **New jobs per account**: at most 100 per 30 s. A PUT beyond it is refused (the page says
//!   only "the client receives an error response"; the double answers 429 `TooManyRequests`
//!   in Automation's flat body, with `Retry-After` until the oldest creation leaves the window).
//! - **Durations**: a script with [`Script::runs_for`](super::Script::runs_for) runs for a wall
//!   time (one per job, spread evenly over a range by its name) instead of a number of polls,
//!   and ends on time whether or not anybody polls it, freeing its slot.
//!
//! Both limits are off by default.

use super::{Inner, JobRecord, flat};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// The Automation account's offer, which sets its concurrent-jobs limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Enterprise and CSP subscriptions: 50.
    Enterprise,
    /// Pay-as-you-go, sponsored, MSDN, MPN, Azure Pass: 10.
    PayAsYouGo,
    /// Free trial, Azure for Students: 5.
    Free,
}

impl Offer {
    pub fn concurrent_jobs(self) -> usize {
        match self {
            Offer::Enterprise => 50,
            Offer::PayAsYouGo => 10,
            Offer::Free => 5,
        }
    }
}

/// Automation's new-jobs limit: 100 per 30 s.
pub const NEW_JOBS: usize = 100;
pub const NEW_JOBS_WINDOW: Duration = Duration::from_secs(30);

/// The limits in force (off by default).
#[derive(Debug, Default)]
pub(super) struct Limits {
    pub(super) concurrent: Option<usize>,
    pub(super) new_jobs: Option<(usize, Duration)>,
    /// When the jobs in the current window were created.
    created: VecDeque<Instant>,
    /// Jobs refused at the new-jobs limit.
    pub(super) refused_puts: usize,
}

/// Whether a job's status ends it.
pub(super) fn is_final(status: &str) -> bool {
    matches!(status, "Completed" | "Failed" | "Stopped" | "Suspended")
}

/// Takes a slot of the new-jobs window for a PUT that creates a job; `Some(refusal)` when
/// the window is full.
pub(super) fn refuse_put(inner: &mut Inner, now: Instant) -> Option<Response> {
    let (max, window) = inner.limits.new_jobs?;
    let created = &mut inner.limits.created;
    while created
        .front()
        .is_some_and(|at| now.duration_since(*at) >= window)
    {
        created.pop_front();
    }
    if created.len() < max {
        created.push_back(now);
        return None;
    }
    let wait = created.front().map_or(window, |oldest| {
        window.saturating_sub(now.duration_since(*oldest))
    });
    inner.limits.refused_puts += 1;
    let mut response = flat(
        StatusCode::TOO_MANY_REQUESTS,
        "TooManyRequests",
        &format!(
            "The number of new jobs submitted to the Automation account exceeds the limit of {max} per {} seconds. Try again later.",
            window.as_secs()
        ),
    );
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    Some(response)
}

/// The status a job is created in: `Queued` when the account runs as many jobs as it may.
pub(super) fn first_status(inner: &Inner) -> &'static str {
    match inner.limits.concurrent {
        Some(max) if active(inner) >= max => "Queued",
        _ => "New",
    }
}

/// Jobs that hold a slot: created, not held back, not ended.
fn active(inner: &Inner) -> usize {
    inner
        .jobs
        .values()
        .filter(|j| j.status != "Queued" && !is_final(&j.status))
        .count()
}

/// Brings the account up to now: jobs with a duration end on time, and held-back jobs take
/// the slots that freed, oldest first.
pub(super) fn settle(inner: &mut Inner) {
    let now = OffsetDateTime::now_utc();
    for job in inner.jobs.values_mut() {
        timed(job, now);
    }
    let Some(max) = inner.limits.concurrent else {
        return;
    };
    let mut free = max.saturating_sub(active(inner));
    if free == 0 {
        return;
    }
    let mut held: Vec<(u64, String)> = inner
        .jobs
        .values()
        .filter(|j| j.status == "Queued")
        .map(|j| (j.seq, j.name.clone()))
        .collect();
    held.sort();
    for (_, name) in held {
        if free == 0 {
            break;
        }
        if let Some(job) = inner.jobs.get_mut(&name) {
            job.status = "New".to_owned();
            job.admitted_at = Some(now);
            free -= 1;
        }
    }
}

/// A job with a duration: `Running` from its admission, its end status once the duration is
/// over (ended at exactly admission + duration).
pub(super) fn timed(job: &mut JobRecord, now: OffsetDateTime) {
    let (Some(duration), Some(admitted)) = (job.duration, job.admitted_at) else {
        return;
    };
    if job.status == "Queued" || is_final(&job.status) || job.stop_requested {
        return;
    }
    if job.start_time.is_none() {
        job.start_time = Some(admitted);
    }
    let ends = admitted + duration;
    if job.script.end != super::End::Never && now >= ends {
        job.status = job.script.end.status().to_owned();
        job.end_time = Some(ends);
    } else {
        job.status = "Running".to_owned();
    }
}

/// One duration in `[min, max]` per job name, spread evenly (a hash of the name, so runs repeat).
pub(super) fn pick(name: &str, (min, max): (Duration, Duration)) -> Duration {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let span = max.saturating_sub(min).as_millis() as u64;
    min + Duration::from_millis(if span == 0 { 0 } else { h % (span + 1) })
}
