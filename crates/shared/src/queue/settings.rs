//! [`QueueSettings`]: where the queue service is ([`QueueTarget`]) and what the queue is called,
//! read from the environment once at start by [`QueueSettings::from_env`].
//!
//! Either a connection string (Azurite, account key, or SAS) or a queue endpoint used with an
//! Entra ID credential (managed identity), exactly one. Queue names follow Azure's rules with
//! room left for `<name>-poison` ([`validate_queue_name`]).

use super::connection::ConnectionString;
use super::retry::RetryBudget;
use crate::config::{ConfigError, EnvSource, optional};
use url::Url;

/// Connection string (Azurite, account key, or SAS). Exclusive with [`QUEUE_ENDPOINT_VAR`].
pub const CONNECTION_STRING_VAR: &str = "AZURE_STORAGE_CONNECTION_STRING";
/// `https://<account>.queue.core.windows.net`, used with an Entra ID credential.
pub const QUEUE_ENDPOINT_VAR: &str = "AZURE_STORAGE_QUEUE_ENDPOINT";
/// The queue name; its poison queue is `<name>-poison`.
pub const QUEUE_NAME_VAR: &str = "CHATOPS_QUEUE_NAME";
pub const DEFAULT_QUEUE_NAME: &str = "runbook-jobs";
pub(super) const POISON_SUFFIX: &str = "-poison";

/// Where the queue service is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueTarget {
    /// `AZURE_STORAGE_CONNECTION_STRING`: Azurite, account key or SAS.
    ConnectionString(ConnectionString),
    /// `AZURE_STORAGE_QUEUE_ENDPOINT` (https): needs an Entra ID credential.
    Endpoint(Url),
}

/// Everything needed to build an [`AzureJobQueue`](super::azure::AzureJobQueue) except the
/// credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSettings {
    pub target: QueueTarget,
    /// Validated queue name; the poison queue is `<name>-poison`.
    pub name: String,
    pub budget: RetryBudget,
}

impl QueueSettings {
    /// Reads the queue settings; `budget` is chosen by the service.
    ///
    /// - `AZURE_STORAGE_CONNECTION_STRING` or `AZURE_STORAGE_QUEUE_ENDPOINT` (https), exactly one.
    /// - `CHATOPS_QUEUE_NAME`, default `runbook-jobs`.
    pub fn from_env(
        env: &dyn EnvSource,
        budget: RetryBudget,
    ) -> Result<QueueSettings, ConfigError> {
        let connection = optional(env, CONNECTION_STRING_VAR);
        let endpoint = optional(env, QUEUE_ENDPOINT_VAR);
        let target = match (connection, endpoint) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    CONNECTION_STRING_VAR,
                    format!(
                        "set either {CONNECTION_STRING_VAR} (account key or SAS) or \
                         {QUEUE_ENDPOINT_VAR} (managed identity), not both"
                    ),
                ));
            }
            (None, None) => {
                return Err(ConfigError::new(
                    QUEUE_ENDPOINT_VAR,
                    format!(
                        "no queue configured: set {QUEUE_ENDPOINT_VAR}=https://<account>.queue.core.windows.net \
                         (managed identity), or {CONNECTION_STRING_VAR} (`UseDevelopmentStorage=true` \
                         for Azurite)"
                    ),
                ));
            }
            (Some(c), None) => QueueTarget::ConnectionString(
                c.parse()
                    .map_err(|e| ConfigError::new(CONNECTION_STRING_VAR, format!("{e}")))?,
            ),
            (None, Some(_)) => QueueTarget::Endpoint(token_endpoint(env, QUEUE_ENDPOINT_VAR)?),
        };
        let name = optional(env, QUEUE_NAME_VAR).unwrap_or_else(|| DEFAULT_QUEUE_NAME.to_owned());
        validate_queue_name(&name).map_err(|p| ConfigError::new(QUEUE_NAME_VAR, p))?;
        Ok(QueueSettings {
            target,
            name,
            budget,
        })
    }
}

/// A service endpoint for Entra ID tokens from `var` (set): https, no query, no trailing `/`.
pub(crate) fn token_endpoint(env: &dyn EnvSource, var: &str) -> Result<Url, ConfigError> {
    let mut url =
        crate::config::url(env, var)?.ok_or_else(|| ConfigError::new(var, "is required"))?;
    if url.scheme() != "https" {
        return Err(ConfigError::new(
            var,
            "must be https (Entra ID tokens are only sent over https); for Azurite use \
             AZURE_STORAGE_CONNECTION_STRING=UseDevelopmentStorage=true",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::new(
            var,
            "must not carry a query string (a SAS goes in AZURE_STORAGE_CONNECTION_STRING)",
        ));
    }
    let path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&path);
    Ok(url)
}

/// Azure's queue-name rules (3-63 characters; lowercase letters, digits and single hyphens; no
/// hyphen first or last), applied so that `<name>-poison` is valid too.
pub fn validate_queue_name(name: &str) -> Result<(), String> {
    let max = 63 - POISON_SUFFIX.len();
    crate::storage::validate_name(
        name,
        max,
        &format!(" (so that `{name}{POISON_SUFFIX}` fits in 63)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&'static str, &'static str)]) -> HashMap<&'static str, &'static str> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn from_env_needs_exactly_one_target() {
        let both = env(&[
            (CONNECTION_STRING_VAR, "UseDevelopmentStorage=true"),
            (QUEUE_ENDPOINT_VAR, "https://a.queue.core.windows.net"),
        ]);
        let e = QueueSettings::from_env(&both, RetryBudget::interactive()).unwrap_err();
        assert!(e.to_string().contains("not both"), "{e}");

        let e = QueueSettings::from_env(&env(&[]), RetryBudget::interactive()).unwrap_err();
        assert!(e.to_string().contains("UseDevelopmentStorage=true"), "{e}");

        let s = QueueSettings::from_env(
            &env(&[(CONNECTION_STRING_VAR, "UseDevelopmentStorage=true")]),
            RetryBudget::interactive(),
        )
        .unwrap();
        assert_eq!(s.name, "runbook-jobs");
        assert_eq!(
            s.target,
            QueueTarget::ConnectionString(ConnectionString::development_storage())
        );
    }

    #[test]
    fn from_env_endpoint_must_be_https() {
        let e = QueueSettings::from_env(
            &env(&[(QUEUE_ENDPOINT_VAR, "http://a.queue.core.windows.net")]),
            RetryBudget::background(),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("AZURE_STORAGE_QUEUE_ENDPOINT: must be https"),
            "{e}"
        );

        let s = QueueSettings::from_env(
            &env(&[
                (QUEUE_ENDPOINT_VAR, "https://a.queue.core.windows.net/"),
                (QUEUE_NAME_VAR, "jobs-2"),
            ]),
            RetryBudget::background(),
        )
        .unwrap();
        assert_eq!(
            s.target,
            QueueTarget::Endpoint(Url::parse("https://a.queue.core.windows.net").unwrap())
        );
        assert_eq!(s.name, "jobs-2");
    }

    #[test]
    fn from_env_connection_string_errors_do_not_quote_it() {
        let e = QueueSettings::from_env(
            &env(&[(CONNECTION_STRING_VAR, "AccountName=a;AccountKey=hunter2!")]),
            RetryBudget::background(),
        )
        .unwrap_err();
        assert_eq!(e.var, CONNECTION_STRING_VAR);
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn queue_names_follow_azure_rules_with_room_for_poison() {
        for ok in ["abc", "runbook-jobs", "a1-b2-c3", &"a".repeat(56)] {
            assert_eq!(validate_queue_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "ab",
            "Jobs",
            "-jobs",
            "jobs-",
            "a--b",
            "jobs_1",
            &"a".repeat(57),
        ] {
            assert!(validate_queue_name(bad).is_err(), "{bad}");
        }
    }
}
