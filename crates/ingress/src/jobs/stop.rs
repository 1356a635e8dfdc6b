//! `/runbook stop <job>`: for the person who started the job, and for whom the runbook's
//! `stop_allow` names. Queues a `kind: stop` message naming the job (`target`); whichever runner
//! takes it does the stopping. The channel sees who asked.

use super::answer::{self, JobRefusal};
use super::lookup;
use crate::enqueue::{EnqueueError, Queued, enqueue};
use crate::reply::Reply;
use crate::run::Request;
use chatops_shared::audit::AuditEvent;
use chatops_shared::catalog::Caller;
use chatops_shared::job::JobKind;

pub async fn stop(req: &Request<'_>, typed: &str) -> Result<Reply, JobRefusal> {
    let record = lookup::visible_job(req, typed, super::RECORDS_DEADLINE_BEFORE_ENQUEUE).await?;
    // First, as the caller may see the job anyway: no user-group lookup (nor a refusal that
    // says to try again) for a job there is nothing to stop of.
    if record.state.is_final() {
        return Err(JobRefusal::AlreadyEnded {
            record: Box::new(record),
        });
    }
    let catalog = req.state.catalog.current();
    let runbook = catalog.get(&record.runbook);
    // No lookup where `stop_allow`'s channels refuse the stop anyway: a lookup that fails
    // would be blamed for a refusal it did not cause.
    let groups = match runbook {
        Some(rb)
            if record.user_id != req.cmd.user_id && rb.stop_channel_fits(&req.cmd.channel_id) =>
        {
            crate::policy::groups(req, &rb.stop_groups_to_ask(&req.cmd.user_id)).await
        }
        _ => Default::default(),
    };
    let caller = Caller {
        groups: &groups,
        ..req.caller()
    };
    let allowed =
        record.user_id == caller.user_id || runbook.is_some_and(|rb| rb.stop_allowed(&caller));
    if !allowed {
        tracing::info!(job = %record.job_id, "stop refused: not the requester, not in stop_allow");
        let lookup_problem = groups.problem().map(str::to_owned);
        let rule = match lookup_problem {
            Some(_) => "usergroup_lookup",
            None => "stop_allow",
        };
        // Audited with the other job-control refusals (`jobs::audited`).
        crate::policy::log_denied(req, &record.runbook, rule);
        return Err(JobRefusal::StopDenied {
            record: Box::new(record),
            lookup_problem,
        });
    }
    // The stop is a job message of its own (its id from this request), for the target's
    // runbook and parameters so that messages about it can say what is stopped.
    let mut message = req.message(
        &catalog,
        JobKind::Stop,
        record.runbook.clone(),
        record.params.clone(),
    );
    message.target = Some(record.job_id);
    // The record holds secret values masked already; the names keep them masked downstream.
    message.secret_params.clone_from(&record.secret_params);
    tracing::Span::current().record("job_id", tracing::field::display(message.job_id));
    let mut queued = enqueue(req.state, &message, req.deadline).await;
    if matches!(queued, Err(EnqueueError::TooLarge { .. })) {
        // A job whose values fill a queue message: the stop goes without them (they are only
        // shown; the runner finds the job by `target`).
        message.params.clear();
        message.secret_params.clear();
        queued = enqueue(req.state, &message, req.deadline).await;
    }
    match queued {
        Ok(Queued::Now) => {
            crate::metrics::command("accepted", "stop");
            tracing::info!(target_job = %record.job_id, "stop queued");
            req.state.audit.record(AuditEvent::StopRequested {
                job_id: record.job_id,
                by: caller.user_id.to_owned(),
                stop_job_id: message.job_id,
            });
        }
        Ok(Queued::Before) => crate::metrics::replayed(),
        Err(e) => {
            tracing::error!(error = %e, "could not queue a stop");
            return Err(JobRefusal::QueueDown {
                short_id: record.short_id(),
                deadline: matches!(e, EnqueueError::Deadline),
            });
        }
    }
    Ok(answer::stop_asked(
        caller.user_id,
        caller.channel_id,
        &record,
    ))
}
