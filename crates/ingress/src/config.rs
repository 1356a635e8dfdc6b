//! The ingress's configuration, read once at start. Every variable, with its default:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `CHATOPS_INGRESS_ADDR` | `0.0.0.0:3000` | listen address |
//! | `CHATOPS_METRICS_ADDR` | `127.0.0.1:9090` | listen address of `GET /metrics` (Prometheus), apart from the Slack endpoint |
//! | `SLACK_SIGNING_SECRET` | required | the Slack app's signing secret |
//! | `SLACK_SIGNING_SECRET_PREVIOUS` | unset | also accepted, while rotating the secret |
//! | `CHATOPS_JOB_SIGNING_KEY` | required | base64 of at least 32 random bytes; signs every job message (`chatops-ingress keygen`) |
//! | `CHATOPS_CATALOG` | `runbooks.toml` | the runbook catalog |
//! | `CHATOPS_CATALOG_POLL` | `5s` | how often the catalog file is read for changes (also reloaded on SIGHUP); a changed catalog that does not load is refused and the old one stays |
//! | `CHATOPS_MAX_CONNECTIONS` | `1024` | connections open at once; more wait to be accepted |
//! | `TOKIO_WORKER_THREADS` | `1` | threads serving requests (Tokio's own variable; see `serve::WORKER_THREADS`) |
//! | queue variables | | see `chatops_shared::queue::azure::QueueSettings` |
//! | `CHATOPS_AZURE_CREDENTIAL` | `auto` | credential for `AZURE_STORAGE_QUEUE_ENDPOINT` and `AZURE_STORAGE_BLOB_ENDPOINT` |
//! | blob variables | | `AZURE_STORAGE_CONNECTION_STRING`'s `BlobEndpoint`, or `AZURE_STORAGE_BLOB_ENDPOINT`: see `chatops_shared::blob::settings::BlobSettings` |
//! | `CHATOPS_RECORDS_CONTAINER` | `chatops-jobs` | the job records container, read (never written) by job control |
//! | `CHATOPS_RECORDS_RETENTION` | `30` | days job records are kept: how far back `history` and job ids reach |
//! | `SLACK_TEAM_ID` | unset (any) | comma-separated workspace IDs (`T…`) whose commands are served |
//! | `SLACK_ENTERPRISE_ID` | unset (any) | comma-separated Enterprise Grid IDs (`E…`) whose commands are served |
//! | `CHATOPS_AUDIT_CONTAINER` | `chatops-audit` | the audit log container, where accepted, rejected and denied commands are appended |

use chatops_shared::blob::settings::{BlobSettings, BlobTarget};
use chatops_shared::config::{self, ConfigError, EnvSource};
use chatops_shared::credential::{self, Chosen};
use chatops_shared::job::JobKey;
use chatops_shared::queue::azure::{QueueSettings, QueueTarget, RetryBudget};
use chatops_shared::secret::Secret;
use chatops_shared::slack_api::SlackApi;
use chatops_shared::workspaces::Workspaces;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug)]
pub struct IngressConfig {
    pub addr: SocketAddr,
    /// Where `GET /metrics` is served (not with the Slack endpoint).
    pub metrics_addr: SocketAddr,
    /// Current signing secret first, then the previous one during a rotation.
    pub signing_secrets: Vec<Secret>,
    /// Signs every job message this ingress queues (the runner checks it).
    pub job_key: JobKey,
    pub catalog_path: PathBuf,
    /// `CHATOPS_CATALOG_POLL`: how often the catalog file is read for changes.
    pub catalog_poll: std::time::Duration,
    /// Queue settings with the interactive retry budget: Slack waits 3 s at most.
    pub queue: QueueSettings,
    /// Where the job records are, read by `status`, `stop`, `rerun` and `history` (interactive
    /// retry budget too).
    pub records: BlobSettings,
    /// The audit log container (appended to, never read).
    pub audit: BlobSettings,
    /// The Azure credential, when the queue or the blobs are reached with one (endpoint form).
    pub credential: Option<Chosen>,
    /// The most connections open at once (at least 1).
    pub max_connections: usize,
    /// How many days of job records `history` and job ids look back over.
    pub records_retention_days: u16,
    /// `SLACK_TEAM_ID`, `SLACK_ENTERPRISE_ID`: the workspaces whose commands are served.
    pub workspaces: Workspaces,
    /// `SLACK_BOT_TOKEN`, `SLACK_API_BASE_URL`: the Slack Web API client, when a bot token is set.
    pub slack_api: Option<SlackApi>,
    /// `CHATOPS_USERGROUP_TTL`: how long a user group's member list is used.
    pub usergroup_ttl: std::time::Duration,
}

impl IngressConfig {
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        let mut signing_secrets = vec![Secret::new(config::required(env, "SLACK_SIGNING_SECRET")?)];
        if let Some(previous) = config::optional(env, "SLACK_SIGNING_SECRET_PREVIOUS") {
            signing_secrets.push(Secret::new(previous));
        }
        let job_key = JobKey::from_env(env, chatops_shared::job::mac::KEY_VAR)?;
        let queue = QueueSettings::from_env(env, RetryBudget::interactive())?;
        let records = chatops_shared::records::settings_from_env(env, RetryBudget::interactive())?;
        let audit = chatops_shared::audit::settings_from_env(env)?;
        // Checked even when unused, so that a typo does not wait for the day it matters.
        let kind = credential::CredentialKind::from_env(env)?;
        let needs_credential = matches!(queue.target, QueueTarget::Endpoint(_))
            || matches!(records.target, BlobTarget::Endpoint(_));
        let credential = if needs_credential {
            Some(credential::choose(kind, env)?)
        } else {
            None
        };
        Ok(IngressConfig {
            addr: config::socket_addr(env, "CHATOPS_INGRESS_ADDR", "0.0.0.0:3000")?,
            metrics_addr: config::socket_addr(env, "CHATOPS_METRICS_ADDR", "127.0.0.1:9090")?,
            signing_secrets,
            job_key,
            catalog_path: PathBuf::from(
                config::optional(env, "CHATOPS_CATALOG")
                    .unwrap_or_else(|| "runbooks.toml".to_owned()),
            ),
            catalog_poll: config::duration(
                env,
                "CHATOPS_CATALOG_POLL",
                chatops_shared::catalog::DEFAULT_POLL,
            )?,
            queue,
            records,
            audit,
            credential,
            max_connections: config::at_least_one(env, "CHATOPS_MAX_CONNECTIONS")?
                .unwrap_or(crate::serve::MAX_CONNECTIONS),
            records_retention_days: chatops_shared::records::retention_days_from_env(env)?,
            workspaces: Workspaces::from_env(env)?,
            slack_api: chatops_shared::slack_api::from_env(env)?,
            usergroup_ttl: chatops_shared::membership::ttl_from_env(env)?,
        })
    }
}

/// `TOKIO_WORKER_THREADS`: the runtime's worker threads, [`crate::serve::WORKER_THREADS`]
/// when unset. Read on its own, before [`IngressConfig::from_env`]: the runtime is built first
/// (telemetry, and what reading the rest logs, need it).
pub fn worker_threads(env: &dyn EnvSource) -> Result<usize, ConfigError> {
    Ok(chatops_shared::runtime::worker_threads(env)?.unwrap_or(crate::serve::WORKER_THREADS))
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
    fn the_job_signing_key_is_required_well_formed_and_never_quoted() {
        let base = [
            ("SLACK_SIGNING_SECRET", "s"),
            (
                "AZURE_STORAGE_CONNECTION_STRING",
                "UseDevelopmentStorage=true",
            ),
        ];
        for bad in ["", "not base64!", "c2hvcnQ="] {
            let mut e = env(&base);
            e.insert("CHATOPS_JOB_SIGNING_KEY", bad);
            let err = IngressConfig::from_env(&e).unwrap_err();
            assert_eq!(err.var, "CHATOPS_JOB_SIGNING_KEY", "{err}");
            if !bad.is_empty() {
                assert!(!err.to_string().contains(bad), "{err}");
            }
        }
        let c = IngressConfig::from_env(&env(&base)).unwrap();
        assert_eq!(c.job_key.to_base64(), KEY);
    }

    #[test]
    fn defaults() {
        let c = IngressConfig::from_env(&env(&[
            ("SLACK_SIGNING_SECRET", "s1"),
            (
                "AZURE_STORAGE_CONNECTION_STRING",
                "UseDevelopmentStorage=true",
            ),
        ]))
        .unwrap();
        assert_eq!(c.addr.to_string(), "0.0.0.0:3000");
        assert_eq!(c.metrics_addr.to_string(), "127.0.0.1:9090");
        assert_eq!(c.catalog_path, PathBuf::from("runbooks.toml"));
        assert_eq!(c.queue.name, "runbook-jobs");
        assert_eq!(c.signing_secrets, vec![Secret::new("s1")]);
        assert_eq!(c.max_connections, 1024);
        assert_eq!(c.records_retention_days, 30);
        assert_eq!(c.records.container, "chatops-jobs");
        assert_eq!(c.records.budget, RetryBudget::interactive());
        assert!(
            c.credential.is_none(),
            "a connection string needs no Azure credential"
        );
    }

    #[test]
    fn previous_signing_secret_is_accepted_too() {
        let c = IngressConfig::from_env(&env(&[
            ("SLACK_SIGNING_SECRET", "new"),
            ("SLACK_SIGNING_SECRET_PREVIOUS", "old"),
            (
                "AZURE_STORAGE_CONNECTION_STRING",
                "UseDevelopmentStorage=true",
            ),
            ("CHATOPS_INGRESS_ADDR", "127.0.0.1:8080"),
            ("CHATOPS_METRICS_ADDR", "0.0.0.0:9100"),
            ("CHATOPS_CATALOG", "/etc/chatops/runbooks.toml"),
            ("CHATOPS_QUEUE_NAME", "ops-jobs"),
            ("CHATOPS_MAX_CONNECTIONS", "64"),
            ("CHATOPS_RECORDS_RETENTION", "90"),
            ("CHATOPS_RECORDS_CONTAINER", "ops-jobs"),
        ]))
        .unwrap();
        assert_eq!(c.records.container, "ops-jobs");
        assert_eq!(c.max_connections, 64);
        assert_eq!(c.records_retention_days, 90);
        assert_eq!(
            c.signing_secrets,
            vec![Secret::new("new"), Secret::new("old")]
        );
        assert_eq!(c.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.metrics_addr.to_string(), "0.0.0.0:9100");
        assert_eq!(c.catalog_path, PathBuf::from("/etc/chatops/runbooks.toml"));
        assert_eq!(c.queue.name, "ops-jobs");
    }

    #[test]
    fn endpoint_form_chooses_a_credential_and_errors_never_quote_secrets() {
        let c = IngressConfig::from_env(&env(&[
            ("SLACK_SIGNING_SECRET", "s"),
            (
                "AZURE_STORAGE_QUEUE_ENDPOINT",
                "https://acct.queue.core.windows.net",
            ),
            (
                "AZURE_STORAGE_BLOB_ENDPOINT",
                "https://acct.blob.core.windows.net",
            ),
            ("IDENTITY_ENDPOINT", "http://127.0.0.1:42356/msi/token"),
            ("IDENTITY_HEADER", "h"),
        ]))
        .unwrap();
        assert!(c.credential.is_some());
        assert_eq!(
            c.records.target,
            BlobTarget::Endpoint("https://acct.blob.core.windows.net".parse().unwrap())
        );
        let e = IngressConfig::from_env(&env(&[("AZURE_STORAGE_CONNECTION_STRING", "x")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("SLACK_SIGNING_SECRET"), "{e}");
        let e = IngressConfig::from_env(&env(&[
            ("SLACK_SIGNING_SECRET", "s"),
            ("CHATOPS_INGRESS_ADDR", "everywhere"),
            (
                "AZURE_STORAGE_CONNECTION_STRING",
                "UseDevelopmentStorage=true",
            ),
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("CHATOPS_INGRESS_ADDR:"), "{e}");
    }

    #[test]
    fn max_connections_defaults_to_1024_and_must_be_a_positive_number() {
        let base = [
            ("SLACK_SIGNING_SECRET", "s"),
            (
                "AZURE_STORAGE_CONNECTION_STRING",
                "UseDevelopmentStorage=true",
            ),
        ];
        let c = IngressConfig::from_env(&env(&base)).unwrap();
        assert_eq!(c.max_connections, 1024);
        let mut e = env(&base);
        e.insert("CHATOPS_MAX_CONNECTIONS", "64");
        assert_eq!(IngressConfig::from_env(&e).unwrap().max_connections, 64);
        for bad in ["0", "-1", "many", "1.5"] {
            e.insert("CHATOPS_MAX_CONNECTIONS", bad);
            let err = IngressConfig::from_env(&e).unwrap_err();
            assert_eq!(err.var, "CHATOPS_MAX_CONNECTIONS", "{err}");
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn one_worker_thread_unless_tokio_worker_threads_says_otherwise() {
        assert_eq!(worker_threads(&env(&[])), Ok(1));
        assert_eq!(
            worker_threads(&env(&[("TOKIO_WORKER_THREADS", "4")])),
            Ok(4)
        );
        let err = worker_threads(&env(&[("TOKIO_WORKER_THREADS", "0")])).unwrap_err();
        assert_eq!(err.var, "TOKIO_WORKER_THREADS", "{err}");
    }
}
