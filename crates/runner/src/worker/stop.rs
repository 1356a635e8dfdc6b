//! A `kind: stop` message (`/runbook stop <job>`): whichever runner takes it writes the stop
//! request into the target job's record and, for an Azure Automation job, asks Azure to stop it
//! (`POST jobs/{name}/stop`). The runner holding a local job sees the request in the record
//! within `record_poll` and stops the script's process group (see `watch`). The target's final
//! status, posted by its holder, says who stopped it.
//!
//! The stop message has its own `job_id` and no record: it is never taken for a duplicate of
//! the job it stops. The ingress checked who may stop the job; the runner checks again against
//! the workspace, the record (the requester) and the catalog (`stop_allow`, user groups
//! included).

use super::Worker;
use super::extender::Extender;
use crate::notify::Update;
use chatops_shared::catalog::Caller;
use chatops_shared::job::{JobMessage, short_id};
use chatops_shared::records::{ExecutorRef, RecordsError, StopRequest};

fn text(e: RecordsError) -> String {
    e.to_string()
}
use time::OffsetDateTime;

/// What a stop message came to.
enum Stopping {
    /// The request is in the record (and Azure was asked, for an Automation job).
    Requested,
    /// Nothing to stop; the stopper is told why.
    Nothing(String),
}

impl Worker {
    pub(super) async fn handle_stop(&self, extender: Extender, job: JobMessage) {
        let result = self.stop_target(&job).await;
        match result {
            Ok(Stopping::Requested) => {
                tracing::info!(target = ?job.target, "stop request written");
            }
            Ok(Stopping::Nothing(why)) => {
                tracing::info!(target = ?job.target, %why, "nothing to stop");
                if let Err(e) = self.notifier.notify(&job, &Update::Notice(why)).await {
                    tracing::warn!(error = %e, "could not tell the stopper");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not pass on the stop request; leaving the message for a retry");
                extender.stop().await;
                return;
            }
        }
        let held = extender.stop().await;
        self.delete_all(&held).await;
    }

    /// Errors are transient (storage or Azure unavailable): the message is left for a retry.
    async fn stop_target(&self, job: &JobMessage) -> Result<Stopping, String> {
        if let Err(denied) = self
            .settings
            .workspaces
            .check(&job.team_id, job.enterprise_id.as_deref())
        {
            tracing::info!(decision = "deny", user = %job.user_id, channel = %job.channel_id, runbook = %job.runbook, rule = denied.rule.as_str(), "stop refused");
            return Ok(Stopping::Nothing(denied.to_string()));
        }
        let Some(target) = job.target else {
            return Ok(Stopping::Nothing(
                "the stop request names no job to stop".into(),
            ));
        };
        let today = OffsetDateTime::now_utc().date();
        let found = self
            .records
            .find(&target.to_string(), today)
            .await
            .map_err(text)?;
        let Some(summary) = found.into_iter().find(|s| s.job_id == target) else {
            return Ok(Stopping::Nothing(format!(
                "there is no record of job {}",
                short_id(&target)
            )));
        };
        let Some(current) = self.records.read(&summary.name).await.map_err(text)? else {
            return Ok(Stopping::Nothing(format!(
                "there is no record of job {}",
                short_id(&target)
            )));
        };
        let record = &current.record;
        if record.state.is_final() {
            return Ok(Stopping::Nothing(format!(
                "job {} had already ended ({})",
                short_id(&target),
                record.state.as_str()
            )));
        }
        let catalog = self.catalog.current();
        let runbook = catalog.get(&record.runbook);
        let groups = match runbook {
            Some(rb) if record.user_id != job.user_id => {
                let needed = rb.stop_groups_to_ask(&job.user_id);
                let deadline = tokio::time::Instant::now() + super::prepare::LOOKUP_LIMIT;
                self.membership
                    .resolve(&job.user_id, &needed, deadline)
                    .await
            }
            _ => Default::default(),
        };
        let caller = Caller {
            user_id: &job.user_id,
            channel_id: &job.channel_id,
            groups: &groups,
        };
        let allowed = record.user_id == job.user_id
            || runbook.is_some_and(|runbook| runbook.stop_allowed(&caller));
        if !allowed && let Some(problem) = groups.problem() {
            // Not a "no": the ingress let the stop through and the channel saw it asked for.
            return Err(format!(
                "could not check the stopper's user groups for `stop_allow`: {problem}"
            ));
        }
        if !allowed {
            tracing::info!(decision = "deny", user = %job.user_id, channel = %job.channel_id, runbook = %record.runbook, rule = "stop_allow", "stop refused");
            return Ok(Stopping::Nothing(format!(
                "you may not stop job {}: only the person who started it and those `stop_allow` names may",
                short_id(&target)
            )));
        }
        let request = StopRequest {
            by: job.user_id.clone(),
            at: OffsetDateTime::now_utc(),
            stop_job_id: job.job_id,
        };
        let written = self
            .records
            .update(&current.name, |record| {
                if record.stop.is_some() || record.state.is_final() {
                    return false;
                }
                record.stop = Some(request.clone());
                true
            })
            .await
            .map_err(text)?;
        let automation = written
            .as_ref()
            .is_some_and(|w| matches!(w.record.executor, Some(ExecutorRef::Automation { .. })))
            || self
                .catalog
                .current()
                .get(&record.runbook)
                .is_some_and(|r| r.executor == chatops_shared::catalog::ExecutorKind::Automation);
        if automation && let Some(executor) = &self.executors.automation {
            executor.request_stop(&target).await.map_err(|e| e.0)?;
        }
        Ok(Stopping::Requested)
    }
}
