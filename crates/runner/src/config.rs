//! The runner's configuration, read once at start. Every variable, with its default:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `CHATOPS_RUNNER_ADDR` | `0.0.0.0:3001` | address of `/healthz`, `/readyz` and `/metrics` (Prometheus) |
//! | `CHATOPS_CATALOG` | `runbooks.toml` | the runbook catalog |
//! | `CHATOPS_CATALOG_POLL` | `5s` | how often the catalog file is read for changes (also reloaded on SIGHUP); a changed catalog that does not load is refused and the old one stays |
//! | `CHATOPS_JOB_SIGNING_KEY` | required | base64 of at least 32 random bytes; a message whose `mac` does not verify is never run |
//! | `CHATOPS_JOB_SIGNING_KEY_PREVIOUS` | unset | also accepted, while rotating the key |
//! | `CHATOPS_VISIBILITY_TIMEOUT` | `60s` | how long a taken message stays invisible (extended while its job runs); 60s to 7 days |
//! | `CHATOPS_MAX_DEQUEUE` | `5` | deliveries after which a message goes to the poison queue |
//! | `CHATOPS_RUNNER_CONCURRENCY` | `8` | jobs one runner follows at once |
//! | `CHATOPS_SHUTDOWN_GRACE` | `10s` | how long jobs in flight may finish after SIGTERM |
//! | `SLACK_TEAM_ID` | unset (any) | comma-separated workspace IDs (`T…`) whose jobs are run; a job from another is `Refused` |
//! | `SLACK_ENTERPRISE_ID` | unset (any) | comma-separated Enterprise Grid IDs (`E…`) whose jobs are run |
//! | `CHATOPS_MAX_JOB_AGE` | `1h` | a job not yet started whose request is older than this is not started (`Expired`); at least 1s |
//! | queue variables | | see `chatops_shared::queue::azure::QueueSettings` |
//! | `AZURE_STORAGE_BLOB_ENDPOINT` | unset | blob endpoint (https) for job records and the audit log, with managed identity; with a connection string, its `BlobEndpoint` |
//! | `CHATOPS_RECORDS_CONTAINER` | `chatops-jobs` | the job records container |
//! | `CHATOPS_RECORDS_RETENTION` | `30` | days records are kept (the deployment's lifecycle rule deletes older ones); how far back a job is looked up |
//! | `CHATOPS_AUDIT_CONTAINER` | `chatops-audit` | the audit log container |
//! | Automation variables | | see `executor::arm::ArmConfig` (optional: without them only local runbooks run) |
//! | `CHATOPS_ARM_READS_PER_SECOND` | `5` | this runner's share of the subscription's ARM read budget (see `executor::arm::ReadBudget`) |
//! | `CHATOPS_AUTOMATION_POLL_INTERVAL` | `5s` | how often a young Automation job's status is read; slows to 30s for long jobs |
//! | `CHATOPS_AZURE_CREDENTIAL` | `auto` | credential for ARM and for `AZURE_STORAGE_QUEUE_ENDPOINT` |
//! | Slack variables | | see `notify::slack::SlackNotifierConfig` |
//! | `SLACK_BOT_TOKEN` | unset | bot token (`xoxb-…`): job cards with `chat.postMessage` / `chat.update`, output in their threads (`notify::bot`); without it, `response_url` and the webhook |
//! | `SLACK_API_BASE_URL` | `https://slack.com/api` | where the Web API is |
//! | `CHATOPS_SLACK_POST_INTERVAL` | `1s` | bot path: at least this long between two posts in one channel, across jobs |
//! | `CHATOPS_SLACK_UPDATE_INTERVAL` | `1200ms` | bot path: at least this long between two card updates in one workspace, across jobs |
//! | `CHATOPS_SLACK_TAIL_INTERVAL` | `5s` | bot path: a running job's new output goes into its thread at most once per this interval (`0s`: only at the end) |
//! | `CHATOPS_OUTPUT_KEEP` | `10485760` | bytes of a local script's output kept whole next to its job record (`chatops-runner output <job-id>`); past it the kept output says it was cut |
//! | `CHATOPS_SCRIPT_USER` | unset | user (name or uid) local scripts run as; required when the runner runs as root and the catalog has local runbooks (`root` accepts that scripts can read the runner's secrets); see `docs/security.md` |

use crate::executor::arm::ArmConfig;
use crate::executor::automation::PollSchedule;
use crate::notify::bot::BotSettings;
use crate::notify::slack::SlackNotifierConfig;
use crate::worker::WorkerSettings;
use chatops_shared::blob::settings::{BlobSettings, BlobTarget};
use chatops_shared::config::{self, ConfigError, EnvSource};
use chatops_shared::credential::{self, Chosen};
use chatops_shared::job::JobKeys;
use chatops_shared::queue::azure::{QueueSettings, QueueTarget, RetryBudget};
use chatops_shared::records::retention_days_from_env;
use chatops_shared::workspaces::Workspaces;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug)]
pub struct RunnerConfig {
    pub addr: SocketAddr,
    pub catalog_path: PathBuf,
    /// `CHATOPS_CATALOG_POLL`: how often the catalog file is read for changes.
    pub catalog_poll: std::time::Duration,
    /// The keys a job message's `mac` must verify under.
    pub job_keys: JobKeys,
    pub queue: QueueSettings,
    /// The job records container.
    pub records: BlobSettings,
    /// `CHATOPS_RECORDS_RETENTION`, in days.
    pub records_retention: u16,
    /// The audit log container.
    pub audit: BlobSettings,
    pub worker: WorkerSettings,
    /// `None` when the Automation variables are not set: local runbooks only.
    pub arm: Option<ArmConfig>,
    /// How often Automation jobs are polled.
    pub poll: PollSchedule,
    /// The Azure credential, when ARM or the queue endpoint needs one.
    pub credential: Option<Chosen>,
    pub slack: SlackNotifierConfig,
    /// `SLACK_BOT_TOKEN` / `SLACK_API_BASE_URL`: the one Web API client, for the bot path
    /// (job cards) and user-group lookups.
    pub slack_api: Option<chatops_shared::slack_api::SlackApi>,
    /// Pacing of the bot path (and the Automation account, for the card's portal link).
    pub bot: BotSettings,
    /// `CHATOPS_SCRIPT_USER`: who local scripts run as, checked against the runner's own user
    /// and the catalog at start (`executor::local::user::decide`).
    pub script_user: Option<String>,
    /// `CHATOPS_USERGROUP_TTL`: how long a user group's member list is used.
    pub usergroup_ttl: Duration,
}

impl RunnerConfig {
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        let job_keys = JobKeys::from_env(env)?;
        let queue = QueueSettings::from_env(env, RetryBudget::background())?;
        let records = chatops_shared::records::settings_from_env(env, RetryBudget::background())?;
        let audit = chatops_shared::audit::settings_from_env(env)?;
        let records_retention = retention_days_from_env(env)?;
        let arm = ArmConfig::from_env(env)?;
        let needs_credential = arm.is_some()
            || matches!(queue.target, QueueTarget::Endpoint(_))
            || matches!(records.target, BlobTarget::Endpoint(_));
        // Checked even when unused, so that a typo does not wait for the day it matters.
        let kind = credential::CredentialKind::from_env(env)?;
        let credential = if needs_credential {
            Some(credential::choose(kind, env)?)
        } else {
            None
        };
        let defaults = WorkerSettings::default();
        let worker = WorkerSettings {
            visibility: config::duration(env, "CHATOPS_VISIBILITY_TIMEOUT", defaults.visibility)?,
            max_dequeue: config::at_least_one(env, "CHATOPS_MAX_DEQUEUE")?
                .unwrap_or(defaults.max_dequeue),
            concurrency: config::at_least_one(env, "CHATOPS_RUNNER_CONCURRENCY")?
                .unwrap_or(defaults.concurrency),
            shutdown_grace: config::duration(
                env,
                "CHATOPS_SHUTDOWN_GRACE",
                defaults.shutdown_grace,
            )?,
            max_job_age: config::duration(env, "CHATOPS_MAX_JOB_AGE", defaults.max_job_age)?,
            output_keep: config::at_least_one(env, "CHATOPS_OUTPUT_KEEP")?
                .unwrap_or(defaults.output_keep),
            workspaces: Workspaces::from_env(env)?,
            ..defaults
        };
        if worker.max_job_age < Duration::from_secs(1) {
            return Err(ConfigError::new(
                "CHATOPS_MAX_JOB_AGE",
                "must be at least 1s",
            ));
        }
        // Shorter, and a slow or failing extension could let the message reappear while its
        // job runs (see `worker::MIN_VISIBILITY`).
        if worker.visibility < crate::worker::MIN_VISIBILITY
            || worker.visibility > Duration::from_secs(7 * 24 * 3600)
        {
            return Err(ConfigError::new(
                "CHATOPS_VISIBILITY_TIMEOUT",
                "must be between 60s and 7 days",
            ));
        }
        let default_poll = PollSchedule::default();
        let poll = PollSchedule {
            initial: config::duration(
                env,
                "CHATOPS_AUTOMATION_POLL_INTERVAL",
                default_poll.initial,
            )?,
            ..default_poll
        };
        let bot = BotSettings {
            automation_account: arm.as_ref().map(|a| {
                format!(
                    "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Automation/automationAccounts/{}",
                    a.subscription_id, a.resource_group, a.account
                )
            }),
            ..BotSettings::from_env(env)?
        };
        Ok(RunnerConfig {
            addr: config::socket_addr(env, "CHATOPS_RUNNER_ADDR", "0.0.0.0:3001")?,
            catalog_path: PathBuf::from(
                config::optional(env, "CHATOPS_CATALOG")
                    .unwrap_or_else(|| "runbooks.toml".to_owned()),
            ),
            catalog_poll: config::duration(
                env,
                "CHATOPS_CATALOG_POLL",
                chatops_shared::catalog::DEFAULT_POLL,
            )?,
            job_keys,
            queue,
            records,
            records_retention,
            audit,
            worker,
            arm,
            poll,
            credential,
            slack: SlackNotifierConfig::from_env(env)?,
            slack_api: chatops_shared::slack_api::from_env(env)?,
            bot,
            script_user: config::optional(env, "CHATOPS_SCRIPT_USER"),
            usergroup_ttl: chatops_shared::membership::ttl_from_env(env)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A valid key (32 bytes of 0..31), present unless a test overrides it.
    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn env(pairs: &[(&'static str, &'static str)]) -> HashMap<&'static str, &'static str> {
        std::iter::once(("CHATOPS_JOB_SIGNING_KEY", KEY))
            .chain(pairs.iter().copied())
            .collect()
    }

    #[test]
    fn the_job_signing_keys_are_required_and_well_formed() {
        for (var, value) in [
            ("CHATOPS_JOB_SIGNING_KEY", ""),
            ("CHATOPS_JOB_SIGNING_KEY", "c2hvcnQ="),
            ("CHATOPS_JOB_SIGNING_KEY", "%%%"),
            ("CHATOPS_JOB_SIGNING_KEY_PREVIOUS", "c2hvcnQ="),
        ] {
            let e = RunnerConfig::from_env(&env(&[QUEUE, (var, value)])).unwrap_err();
            assert_eq!(e.var, var, "{e}");
        }
        let c = RunnerConfig::from_env(&env(&[QUEUE, ("CHATOPS_JOB_SIGNING_KEY_PREVIOUS", KEY)]))
            .unwrap();
        assert!(!format!("{c:?}").contains(KEY), "keys never print");
    }

    const QUEUE: (&str, &str) = (
        "AZURE_STORAGE_CONNECTION_STRING",
        "UseDevelopmentStorage=true",
    );

    #[test]
    fn defaults() {
        let c = RunnerConfig::from_env(&env(&[QUEUE])).unwrap();
        assert_eq!(c.addr.to_string(), "0.0.0.0:3001");
        assert_eq!(c.catalog_path, PathBuf::from("runbooks.toml"));
        assert_eq!(c.worker.visibility, Duration::from_secs(60));
        assert_eq!(c.worker.max_dequeue, 5);
        assert_eq!(c.worker.concurrency, 8);
        assert_eq!(c.worker.shutdown_grace, Duration::from_secs(10));
        assert_eq!(c.worker.max_job_age, Duration::from_secs(3600));
        assert_eq!(c.poll.initial, Duration::from_secs(5));
        assert!(
            c.arm.is_none(),
            "without the Automation variables only local runbooks run"
        );
        assert!(c.credential.is_none());
        assert!(c.slack.webhook_url.is_none());
        assert_eq!(c.slack.response_url_prefix, "https://hooks.slack.com/");
        assert_eq!(c.script_user, None);
        assert!(c.slack_api.is_none(), "no bot token, no bot path");
        assert_eq!(c.bot.post_interval, Duration::from_secs(1));
        assert_eq!(c.bot.update_interval, Duration::from_millis(1200));
    }

    #[test]
    fn every_variable_is_read() {
        let c = RunnerConfig::from_env(&env(&[
            QUEUE,
            ("CHATOPS_RUNNER_ADDR", "127.0.0.1:9001"),
            ("CHATOPS_VISIBILITY_TIMEOUT", "2m"),
            ("CHATOPS_MAX_DEQUEUE", "3"),
            ("CHATOPS_RUNNER_CONCURRENCY", "2"),
            ("CHATOPS_SHUTDOWN_GRACE", "30s"),
            ("CHATOPS_MAX_JOB_AGE", "90m"),
            ("CHATOPS_AUTOMATION_POLL_INTERVAL", "10s"),
            ("CHATOPS_SCRIPT_USER", "nobody"),
            (
                "AZURE_SUBSCRIPTION_ID",
                "00000000-0000-0000-0000-000000000001",
            ),
            ("AUTOMATION_RESOURCE_GROUP", "rg"),
            ("AUTOMATION_ACCOUNT", "acct"),
            ("CHATOPS_AZURE_CREDENTIAL", "azure-cli"),
            (
                "SLACK_WEBHOOK_URL",
                "https://hooks.slack.com/services/T0/B0/X",
            ),
            ("SLACK_BOT_TOKEN", "xoxb-secret-token"),
            ("CHATOPS_SLACK_POST_INTERVAL", "2s"),
            ("CHATOPS_SLACK_UPDATE_INTERVAL", "3s"),
        ]))
        .unwrap();
        assert!(c.slack_api.is_some());
        assert_eq!(c.bot.post_interval, Duration::from_secs(2));
        assert_eq!(c.bot.update_interval, Duration::from_secs(3));
        assert!(
            c.bot
                .automation_account
                .as_deref()
                .is_some_and(|a| a.ends_with("/automationAccounts/acct"))
        );
        assert!(
            !format!("{c:?}").contains("xoxb-secret"),
            "the bot token is a secret"
        );
        assert_eq!(c.addr.to_string(), "127.0.0.1:9001");
        assert_eq!(c.worker.visibility, Duration::from_secs(120));
        assert_eq!((c.worker.max_dequeue, c.worker.concurrency), (3, 2));
        assert_eq!(c.worker.shutdown_grace, Duration::from_secs(30));
        assert_eq!(c.worker.max_job_age, Duration::from_secs(90 * 60));
        assert_eq!(c.poll.initial, Duration::from_secs(10));
        assert_eq!(c.script_user.as_deref(), Some("nobody"));
        assert_eq!(c.arm.as_ref().map(|a| a.account.as_str()), Some("acct"));
        assert!(c.credential.is_some(), "Automation needs a credential");
        assert!(c.slack.webhook_url.is_some());
        assert!(
            !format!("{c:?}").contains("hooks.slack.com/services"),
            "the webhook URL is a secret"
        );
    }

    #[test]
    fn the_max_job_age_takes_any_duration_from_one_second() {
        let c = RunnerConfig::from_env(&env(&[QUEUE, ("CHATOPS_MAX_JOB_AGE", "1s")])).unwrap();
        assert_eq!(c.worker.max_job_age, Duration::from_secs(1));
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("CHATOPS_VISIBILITY_TIMEOUT", "8d"),
            ("CHATOPS_VISIBILITY_TIMEOUT", "59s"),
            ("CHATOPS_MAX_DEQUEUE", "0"),
            ("CHATOPS_RUNNER_CONCURRENCY", "many"),
            ("CHATOPS_MAX_JOB_AGE", "500ms"),
            ("CHATOPS_MAX_JOB_AGE", "0s"),
            ("CHATOPS_MAX_JOB_AGE", "an hour"),
            ("CHATOPS_RUNNER_ADDR", "here"),
            // Checked even though nothing here needs a credential.
            ("CHATOPS_AZURE_CREDENTIAL", "magic"),
            ("CHATOPS_SLACK_POST_INTERVAL", "soon"),
            ("CHATOPS_SLACK_UPDATE_INTERVAL", "0s"),
            ("SLACK_BOT_TOKEN", "xoxp-user-token"),
        ] {
            let e = RunnerConfig::from_env(&env(&[QUEUE, (var, value)])).unwrap_err();
            assert_eq!(e.var, var, "{e}");
        }
    }
}
