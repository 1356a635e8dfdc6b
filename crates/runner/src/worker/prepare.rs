//! The runner's own checks of a job before it runs (every rule the ingress checked: workspace,
//! `allow` with its users, user groups and channels, and the parameter rules with `only`): the catalog may have changed since the
//! ingress accepted the command, the queue may hold messages the ingress never wrote, and a
//! request may have waited too long to be worth starting.

use super::{Ran, Worker};
use crate::executor::{Executor, FinalState, JobRequest, Outcome, StopSignal, TransientError};
use chatops_shared::catalog::{Caller, Catalog, ExecutorKind, Rejection, Runbook};
use chatops_shared::command::Arg;
use chatops_shared::job::JobMessage;
use chatops_shared::records::{ExecutorRef, JobRecord, JobState};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::time::Instant;

/// How long the re-check may wait for Slack's user-group answers; without them the job is
/// refused (fail closed).
pub(super) const LOOKUP_LIMIT: Duration = Duration::from_secs(10);

/// A job checked against the catalog, ready to run.
pub(super) struct Prepared {
    pub(super) request: JobRequest,
    pub(super) executor: Arc<dyn Executor>,
    pub(super) local: bool,
    /// The checks refused a job Azure may have already ([`Reached::AzureMayHaveIt`]): this is
    /// the refusal to report unless an Automation job of its name exists, which is followed
    /// instead (it was created under rules that allowed it, and runs whatever they say now).
    pub(super) unless_found: Option<Refusal>,
}

/// Why the checks refuse a job.
#[derive(Debug, Clone)]
pub(super) struct Refusal {
    outcome: Outcome,
    /// The runbook and the rule, for a refusal of who or where (logged as a denial).
    rule: Option<(String, &'static str)>,
}

impl Refusal {
    /// The outcome to report, the denial logged.
    pub(super) fn report(self, job: &JobMessage) -> Outcome {
        if let Some((runbook, rule)) = &self.rule {
            tracing::info!(decision = "deny", user = %job.user_id, channel = %job.channel_id, runbook, rule, "job refused");
        }
        self.outcome
    }
}

/// How far a job got before this delivery, by its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reached {
    /// Not seen running, and no Automation job of its name was asked for.
    Nothing,
    /// Marked running for an Automation start, never seen running: Azure may have created the
    /// job and hold it back (`Queued`, until the account has a free slot), or never have got it.
    AzureMayHaveIt,
    /// Seen running: its record has its start.
    Running,
}

impl Reached {
    pub(super) fn of(record: &JobRecord) -> Reached {
        if record.started_at.is_some() {
            Reached::Running
        } else if record.state == JobState::Running
            && matches!(record.executor, Some(ExecutorRef::Automation { .. }))
        {
            Reached::AzureMayHaveIt
        } else {
            Reached::Nothing
        }
    }
}

impl Worker {
    /// Checks the workspace, the runbook, the caller and the parameters; `Err` is the outcome to
    /// report (`Refused`, or `Failed` when this runner lacks the executor), or a retry.
    ///
    /// A job seen running (`reached` [`Reached::Running`]: this runner takes it over) was
    /// checked before it started, and runs whatever the rules say now: it is not checked again,
    /// only prepared to be followed (Automation) or reported `Interrupted` (local). Refusing it
    /// would tell the requester it never ran while it runs on, unfollowed. A job only marked
    /// `Running` (its runner stopped before Azure had it, Azure refused the start for a while,
    /// or Azure holds it back) is checked again, as it may still be created; a refusal then is
    /// [`Prepared::unless_found`], as Azure may have it already.
    pub(super) async fn prepare(
        &self,
        job: &JobMessage,
        dequeue_count: u32,
        stop: StopSignal,
        reached: Reached,
    ) -> Result<Prepared, Ran> {
        // One catalog for the whole check, even if a reload swaps it meanwhile.
        let catalog = self.catalog.current();
        let refused =
            |why: String| Outcome::without_run(FinalState::Refused, refusal(job, &catalog, why));
        let workspace = self
            .settings
            .workspaces
            .check(&job.team_id, job.enterprise_id.as_deref())
            .map_err(|denied| denied.to_string());
        if reached == Reached::Nothing {
            workspace.clone().map_err(refused)?;
        }
        let runbook = catalog.get(&job.runbook);
        if reached == Reached::AzureMayHaveIt
            && runbook.is_none_or(|r| r.executor != ExecutorKind::Automation)
        {
            return Err(self.no_longer_automation(job, &catalog).await);
        }
        let Some(runbook) = runbook else {
            return Err(match reached {
                Reached::Running => Outcome::without_run(
                    FinalState::Interrupted,
                    format!(
                        "The job had started, but the runner following it stopped, and `{}` is no longer in this runner's catalog, so it is not followed here: an Automation job may still be running (it is named `{}`); a script stopped with its runner.",
                        job.runbook,
                        job.job_id.hyphenated(),
                    ),
                ),
                // (Azure may have it: asked above.)
                Reached::Nothing | Reached::AzureMayHaveIt => refused(format!(
                    "`{}` is not in this runner's catalog.",
                    job.runbook
                )),
            }
            .into());
        };
        let local = runbook.executor == ExecutorKind::Local;
        let args: Vec<Arg> = job
            .params
            .iter()
            .map(|(name, value)| Arg::Named {
                name: name.clone(),
                value: value.clone(),
            })
            .collect();
        let bound = runbook.bind(&args);
        let mut unless_found = None;
        if reached != Reached::Running {
            let checked = match workspace {
                Ok(()) => self.check_caller(job, runbook, bound.as_ref()).await,
                Err(why) => Err((why, None)),
            };
            if let Err((why, rule)) = checked {
                let refusal = Refusal {
                    outcome: refused(why),
                    rule,
                };
                // Azure may hold an Automation job of this name: it is looked for first.
                if reached == Reached::AzureMayHaveIt {
                    unless_found = Some(refusal);
                } else {
                    return Err(refusal.report(job).into());
                }
            }
        }
        let executor = self.executor_for(runbook.executor)?;
        let params = match &bound {
            // A script takes its values by position: every parameter has its place. Automation
            // takes them by name: leave out what has no value.
            Ok(given) if local => runbook.argv(given),
            Ok(given) => runbook.with_defaults(given),
            // Seen running under a catalog whose rules these values met, or refused unless
            // found: followed by name, or reported `Interrupted`, they are not used.
            Err(_) => job.params.clone().into_iter().collect(),
        };
        let request = JobRequest {
            job_id: job.job_id,
            target: catalog.resolve_target(runbook),
            params,
            // Secret by this runner's catalog or by the message's: either keeps it out of argv.
            secret: runbook
                .secret_params()
                .into_iter()
                .chain(job.secret_params.iter().cloned())
                .collect(),
            timeout: runbook.timeout,
            // A local job's start rules set this (see `once`); an Automation job is found by
            // name, so a redelivery is only worth logging.
            redelivered: !local && dequeue_count > 1,
            stop,
        };
        Ok(Prepared {
            request,
            executor,
            local,
            unless_found,
        })
    }

    /// The caller's and the values' checks: `allow` (with its user groups, asked of Slack) and
    /// each parameter's rules; why not when they refuse, with the runbook and rule of a denial.
    async fn check_caller(
        &self,
        job: &JobMessage,
        runbook: &Runbook,
        bound: Result<&BTreeMap<String, String>, &Rejection>,
    ) -> Result<(), (String, Option<(String, &'static str)>)> {
        let groups = self
            .membership
            .resolve(
                &job.user_id,
                &runbook.groups_to_ask(&job.user_id),
                Instant::now() + LOOKUP_LIMIT,
            )
            .await;
        let caller = Caller {
            user_id: &job.user_id,
            channel_id: &job.channel_id,
            groups: &groups,
        };
        let denied = |r: Rejection| {
            let rule = r.denial().map(|(runbook, rule)| (runbook.to_owned(), rule));
            (r.to_string(), rule)
        };
        runbook.authorize(&caller).map_err(denied)?;
        let given = bound.map_err(|r| (r.to_string(), None))?;
        runbook.check_only(given, &caller).map_err(denied)
    }

    /// A job marked for an Automation start whose runbook is no longer an Automation runbook in
    /// this runner's catalog (removed, or now a local script): Azure is asked whether it has
    /// the job. `Interrupted` when it has (not followed here), `Refused` when it has not; a
    /// retry when Azure cannot say.
    async fn no_longer_automation(&self, job: &JobMessage, catalog: &Catalog) -> Ran {
        let what = if catalog.get(&job.runbook).is_some() {
            format!(
                "`{}` is no longer an Azure Automation runbook in this runner's catalog",
                job.runbook
            )
        } else {
            format!("`{}` is no longer in this runner's catalog", job.runbook)
        };
        match self.azure_has(job).await {
            Some(true) => Ran::Finished(Outcome::without_run(
                FinalState::Interrupted,
                format!(
                    "The runner starting the job stopped before Azure Automation reported it running, and {what}, so it is not followed here: Azure Automation has the job (named `{}`) and may still run it.",
                    job.job_id.hyphenated()
                ),
            )),
            Some(false) => Ran::Finished(Outcome::without_run(
                FinalState::Refused,
                refusal(job, catalog, format!("{what}.")),
            )),
            None => Ran::Retry(TransientError(format!(
                "could not ask Azure Automation whether it has the job ({what})"
            ))),
        }
    }

    /// Whether Azure Automation has a job of this job's name; `None` when it cannot say
    /// (logged), or this runner has no Automation account to ask.
    pub(super) async fn azure_has(&self, job: &JobMessage) -> Option<bool> {
        let Some(automation) = &self.executors.automation else {
            tracing::warn!(
                "this runner has no Azure Automation account to ask whether Azure has the job"
            );
            return None;
        };
        match automation.has_job(&job.job_id).await {
            Ok(has) => Some(has),
            Err(e) => {
                tracing::warn!(error = %e, "could not ask Azure Automation whether it has the job");
                None
            }
        }
    }

    /// This runner's executor of `kind`; `Failed` to report when it has none.
    fn executor_for(&self, kind: ExecutorKind) -> Result<Arc<dyn Executor>, Outcome> {
        match kind {
            ExecutorKind::Local => Ok(self.executors.local.clone()),
            ExecutorKind::Automation => self.executors.automation.clone().ok_or_else(|| {
                Outcome::without_run(
                    FinalState::Failed,
                    "Azure Automation is not configured on this runner (AZURE_SUBSCRIPTION_ID, AUTOMATION_RESOURCE_GROUP, AUTOMATION_ACCOUNT).",
                )
            }),
        }
    }

    /// The outcome to report instead of starting the job, when its request is older than
    /// `max_job_age`. A job that has started is followed whatever its age: only a job not yet
    /// started is given this outcome.
    pub(super) fn expired(&self, job: &JobMessage) -> Option<Outcome> {
        // A request from the future (clocks apart) is not old.
        let age = Duration::try_from(OffsetDateTime::now_utc() - job.requested_at).ok()?;
        if age <= self.settings.max_job_age {
            return None;
        }
        let whole = |d: Duration| humantime::format_duration(Duration::from_secs(d.as_secs()));
        tracing::warn!(age = %whole(age), "the request is too old to start");
        Some(Outcome::without_run(
            FinalState::Expired,
            format!(
                "Not started: the request was {} old when a runner took it up, and requests older than {} are not started. Run the command again if it is still wanted.",
                whole(age),
                whole(self.settings.max_job_age),
            ),
        ))
    }
}

/// Why a job is refused, saying so when the ingress accepted it under another catalog.
fn refusal(job: &JobMessage, catalog: &Catalog, why: String) -> String {
    match job.catalog_version.as_deref() {
        Some(theirs) if theirs != catalog.version() => {
            format!("{why} (the catalog changed since the command was accepted)")
        }
        _ => why,
    }
}
