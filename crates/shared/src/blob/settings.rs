//! [`BlobSettings`]: where the blob service is ([`BlobTarget`]) and which container, read from
//! the environment once at start by [`BlobSettings::from_env`].
//!
//! The same account as the queue: either `AZURE_STORAGE_CONNECTION_STRING` (its `BlobEndpoint=`,
//! or the endpoint derived from `AccountName`, or Azurite's for `UseDevelopmentStorage=true`)
//! or `AZURE_STORAGE_BLOB_ENDPOINT` used with an Entra ID credential, exactly one. Container
//! names follow Azure's rules ([`validate_container_name`]).

use crate::config::{ConfigError, EnvSource, optional};
use crate::queue::connection::{ConnectionString, StorageAuth};
use crate::queue::retry::RetryBudget;
use crate::queue::settings::{CONNECTION_STRING_VAR, QUEUE_ENDPOINT_VAR, token_endpoint};
use url::Url;

/// `https://<account>.blob.core.windows.net`, used with an Entra ID credential.
pub const BLOB_ENDPOINT_VAR: &str = "AZURE_STORAGE_BLOB_ENDPOINT";

/// Where the blob service is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobTarget {
    /// From `AZURE_STORAGE_CONNECTION_STRING`: the blob endpoint and an account key or SAS.
    ConnectionString { endpoint: Url, auth: StorageAuth },
    /// `AZURE_STORAGE_BLOB_ENDPOINT` (https): needs an Entra ID credential.
    Endpoint(Url),
}

/// Everything needed to build an [`AzureBlobStore`](super::azure::AzureBlobStore) except the
/// credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobSettings {
    pub target: BlobTarget,
    /// Validated container name.
    pub container: String,
    pub budget: RetryBudget,
}

impl BlobSettings {
    /// Reads the blob settings; `budget` is chosen by the service, the container name from
    /// `container_var` (default `default_container`).
    ///
    /// - `AZURE_STORAGE_CONNECTION_STRING` (with a blob endpoint) or `AZURE_STORAGE_BLOB_ENDPOINT`
    ///   (https), exactly one; the latter is required when the queue is reached by
    ///   `AZURE_STORAGE_QUEUE_ENDPOINT`.
    pub fn from_env(
        env: &dyn EnvSource,
        budget: RetryBudget,
        container_var: &str,
        default_container: &str,
    ) -> Result<BlobSettings, ConfigError> {
        let connection = optional(env, CONNECTION_STRING_VAR);
        let endpoint = optional(env, BLOB_ENDPOINT_VAR);
        let target = match (connection, endpoint) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    CONNECTION_STRING_VAR,
                    format!(
                        "set either {CONNECTION_STRING_VAR} (account key or SAS) or \
                         {BLOB_ENDPOINT_VAR} (managed identity), not both"
                    ),
                ));
            }
            (None, None) if optional(env, QUEUE_ENDPOINT_VAR).is_some() => {
                return Err(ConfigError::new(
                    BLOB_ENDPOINT_VAR,
                    format!(
                        "is required when {QUEUE_ENDPOINT_VAR} is set: \
                         https://<account>.blob.core.windows.net (same account, managed identity)"
                    ),
                ));
            }
            (None, None) => {
                return Err(ConfigError::new(
                    BLOB_ENDPOINT_VAR,
                    format!(
                        "no blob storage configured: set {BLOB_ENDPOINT_VAR}=https://<account>.blob.core.windows.net \
                         (managed identity), or {CONNECTION_STRING_VAR} (`UseDevelopmentStorage=true` \
                         for Azurite)"
                    ),
                ));
            }
            (Some(c), None) => {
                let parsed: ConnectionString = c
                    .parse()
                    .map_err(|e| ConfigError::new(CONNECTION_STRING_VAR, format!("{e}")))?;
                let endpoint = parsed.blob_endpoint().cloned().map_err(|e| {
                    ConfigError::new(
                        CONNECTION_STRING_VAR,
                        format!(
                            "{e} for blob storage (job records, audit log): add \
                             `BlobEndpoint=https://<account>.blob.core.windows.net` (a SAS must \
                             then also allow the blob service, `ss=bq`)"
                        ),
                    )
                })?;
                BlobTarget::ConnectionString {
                    endpoint,
                    auth: parsed.auth,
                }
            }
            (None, Some(_)) => BlobTarget::Endpoint(token_endpoint(env, BLOB_ENDPOINT_VAR)?),
        };
        let container =
            optional(env, container_var).unwrap_or_else(|| default_container.to_owned());
        validate_container_name(&container).map_err(|p| ConfigError::new(container_var, p))?;
        Ok(BlobSettings {
            target,
            container,
            budget,
        })
    }
}

/// Azure's container-name rules: 3-63 characters; lowercase letters, digits and single
/// hyphens; a letter or digit first and last.
pub fn validate_container_name(name: &str) -> Result<(), String> {
    crate::storage::validate_name(name, 63, "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::connection::DEVSTORE_BLOB_ENDPOINT;
    use std::collections::HashMap;

    const VAR: &str = "CHATOPS_RECORDS_CONTAINER";

    fn env(pairs: &[(&'static str, &'static str)]) -> HashMap<&'static str, &'static str> {
        pairs.iter().copied().collect()
    }

    fn read(pairs: &[(&'static str, &'static str)]) -> Result<BlobSettings, ConfigError> {
        BlobSettings::from_env(&env(pairs), RetryBudget::background(), VAR, "chatops-jobs")
    }

    #[test]
    fn development_storage_is_azurites_blob_service() {
        let s = read(&[(CONNECTION_STRING_VAR, "UseDevelopmentStorage=true")]).unwrap();
        assert_eq!(s.container, "chatops-jobs");
        assert_eq!(s.budget, RetryBudget::background());
        let BlobTarget::ConnectionString { endpoint, auth } = s.target else {
            panic!("expected a connection string");
        };
        assert_eq!(endpoint.as_str(), DEVSTORE_BLOB_ENDPOINT);
        assert!(matches!(auth, StorageAuth::SharedKey { .. }));
    }

    #[test]
    fn account_key_derives_the_blob_endpoint_and_explicit_one_wins() {
        let s = read(&[(
            CONNECTION_STRING_VAR,
            "AccountName=acct;AccountKey=aHVudGVyMg==;EndpointSuffix=core.usgovcloudapi.net",
        )])
        .unwrap();
        assert!(matches!(
            s.target,
            BlobTarget::ConnectionString { ref endpoint, .. }
                if endpoint.as_str() == "https://acct.blob.core.usgovcloudapi.net/"
        ));
        let s = read(&[(
            CONNECTION_STRING_VAR,
            "QueueEndpoint=https://q.example/;BlobEndpoint=https://b.example/acct/;SharedAccessSignature=sv=1&sig=x",
        )])
        .unwrap();
        assert_eq!(
            s.target,
            BlobTarget::ConnectionString {
                endpoint: Url::parse("https://b.example/acct").unwrap(),
                auth: StorageAuth::Sas(crate::secret::Secret::new("sv=1&sig=x")),
            }
        );
    }

    #[test]
    fn queue_only_sas_string_names_blob_endpoint() {
        let e = read(&[(
            CONNECTION_STRING_VAR,
            "QueueEndpoint=https://acct.queue.core.windows.net;SharedAccessSignature=sv=1&sig=hunter2",
        )])
        .unwrap_err();
        assert_eq!(e.var, CONNECTION_STRING_VAR);
        assert!(e.problem.contains("needs `BlobEndpoint`"), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn endpoint_form_must_be_https_and_alone() {
        let s = read(&[
            (QUEUE_ENDPOINT_VAR, "https://a.queue.core.windows.net"),
            (BLOB_ENDPOINT_VAR, "https://a.blob.core.windows.net/"),
            (VAR, "jobs-2"),
        ])
        .unwrap();
        assert_eq!(
            s.target,
            BlobTarget::Endpoint(Url::parse("https://a.blob.core.windows.net").unwrap())
        );
        assert_eq!(s.container, "jobs-2");

        let e = read(&[(BLOB_ENDPOINT_VAR, "http://a.blob.core.windows.net")]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("AZURE_STORAGE_BLOB_ENDPOINT: must be https"),
            "{e}"
        );
        let e = read(&[(BLOB_ENDPOINT_VAR, "https://a.blob.core.windows.net/?sig=x")]).unwrap_err();
        assert!(e.problem.contains("query string"), "{e}");

        let e = read(&[
            (CONNECTION_STRING_VAR, "UseDevelopmentStorage=true"),
            (BLOB_ENDPOINT_VAR, "https://a.blob.core.windows.net"),
        ])
        .unwrap_err();
        assert!(e.problem.contains("not both"), "{e}");
    }

    #[test]
    fn queue_by_endpoint_needs_blob_by_endpoint() {
        let e = read(&[(QUEUE_ENDPOINT_VAR, "https://a.queue.core.windows.net")]).unwrap_err();
        assert_eq!(e.var, BLOB_ENDPOINT_VAR);
        assert!(
            e.problem
                .contains("is required when AZURE_STORAGE_QUEUE_ENDPOINT"),
            "{e}"
        );

        let e = read(&[]).unwrap_err();
        assert_eq!(e.var, BLOB_ENDPOINT_VAR);
        assert!(e.problem.contains("UseDevelopmentStorage=true"), "{e}");
    }

    #[test]
    fn bad_connection_string_is_not_quoted() {
        let e = read(&[(CONNECTION_STRING_VAR, "AccountName=a;AccountKey=hunter2!")]).unwrap_err();
        assert_eq!(e.var, CONNECTION_STRING_VAR);
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn container_name_follows_azures_rules() {
        for ok in ["abc", "chatops-jobs", "a1-b2", &"a".repeat(63)] {
            assert_eq!(validate_container_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "ab",
            "Jobs",
            "-jobs",
            "jobs-",
            "a--b",
            "jobs_1",
            &"a".repeat(64),
        ] {
            assert!(validate_container_name(bad).is_err(), "{bad}");
        }
        let e = read(&[
            (CONNECTION_STRING_VAR, "UseDevelopmentStorage=true"),
            (VAR, "Bad_Name"),
        ])
        .unwrap_err();
        assert_eq!(e.var, VAR);
    }
}
