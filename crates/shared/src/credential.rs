//! The `azure_identity` credential the services use for Azure Resource Manager (and anything else
//! that takes a token), chosen by configuration.
//!
//! `CHATOPS_AZURE_CREDENTIAL` names the kind: `auto` (default), `client-secret`,
//! `workload-identity`, `managed-identity` or `azure-cli`. [`choose`] decides from the
//! environment without touching anything, so it is unit-tested; [`build`] constructs the
//! credential. `auto` picks, in order:
//!
//! 1. client secret when `AZURE_CLIENT_SECRET` is set (needs `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`);
//! 2. workload identity when `AZURE_FEDERATED_TOKEN_FILE` is set (Kubernetes; needs
//!    `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, which the AKS webhook injects);
//! 3. managed identity when `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` are set (App Service,
//!    Container Apps); `AZURE_CLIENT_ID` then selects a user-assigned identity;
//! 4. otherwise the Azure CLI's signed-in account (a developer machine).
//!
//! `azure_identity` reads parts of the process environment itself (`IDENTITY_ENDPOINT`,
//! `IDENTITY_HEADER`, `AZURE_AUTHORITY_HOST`…): what [`choose`] sees in tests is not
//! necessarily what [`build`] finds in production.

use crate::config::{ConfigError, EnvSource, optional};
use crate::secret::Secret;
use azure_core::credentials::TokenCredential;
use azure_identity::{
    AzureCliCredential, ClientSecretCredential, ManagedIdentityCredential,
    ManagedIdentityCredentialOptions, UserAssignedId, WorkloadIdentityCredential,
    WorkloadIdentityCredentialOptions,
};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

/// The variable that names the credential kind.
pub const CREDENTIAL_VAR: &str = "CHATOPS_AZURE_CREDENTIAL";

const TENANT_ID: &str = "AZURE_TENANT_ID";
const CLIENT_ID: &str = "AZURE_CLIENT_ID";
const CLIENT_SECRET: &str = "AZURE_CLIENT_SECRET";
const FEDERATED_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";
const IDENTITY_ENDPOINT: &str = "IDENTITY_ENDPOINT";
const IDENTITY_HEADER: &str = "IDENTITY_HEADER";

/// Which credential `CHATOPS_AZURE_CREDENTIAL` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CredentialKind {
    /// Decide from the environment (see the module doc).
    #[default]
    Auto,
    ClientSecret,
    WorkloadIdentity,
    ManagedIdentity,
    AzureCli,
}

impl CredentialKind {
    /// Reads `CHATOPS_AZURE_CREDENTIAL`; unset means [`CredentialKind::Auto`].
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        match optional(env, CREDENTIAL_VAR) {
            None => Ok(CredentialKind::Auto),
            Some(v) => v
                .parse()
                .map_err(|problem| ConfigError::new(CREDENTIAL_VAR, problem)),
        }
    }
}

impl FromStr for CredentialKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(CredentialKind::Auto),
            "client-secret" => Ok(CredentialKind::ClientSecret),
            "workload-identity" => Ok(CredentialKind::WorkloadIdentity),
            "managed-identity" => Ok(CredentialKind::ManagedIdentity),
            "azure-cli" => Ok(CredentialKind::AzureCli),
            _ => Err(format!(
                "`{s}` is not one of auto, client-secret, workload-identity, managed-identity, azure-cli"
            )),
        }
    }
}

/// The credential [`choose`] settled on, with what [`build`] needs to construct it.
/// Its `Display` is for the startup log and prints no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chosen {
    /// A service principal with a client secret.
    ClientSecret {
        tenant_id: String,
        client_id: String,
        secret: Secret,
    },
    /// Entra workload identity: a federated Kubernetes service-account token.
    WorkloadIdentity {
        tenant_id: String,
        client_id: String,
        token_file: PathBuf,
    },
    /// The managed identity of the host; `client_id` selects a user-assigned one.
    ManagedIdentity { client_id: Option<String> },
    /// The account signed in to the Azure CLI (`az login`).
    AzureCli,
}

impl fmt::Display for Chosen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Chosen::ClientSecret {
                tenant_id,
                client_id,
                ..
            } => write!(
                f,
                "client secret (tenant {}, client id {})",
                abbreviate(tenant_id),
                abbreviate(client_id)
            ),
            Chosen::WorkloadIdentity {
                tenant_id,
                client_id,
                token_file,
            } => write!(
                f,
                "workload identity (tenant {}, client id {}, token file {})",
                abbreviate(tenant_id),
                abbreviate(client_id),
                token_file.display()
            ),
            Chosen::ManagedIdentity { client_id: None } => {
                f.write_str("managed identity (system-assigned)")
            }
            Chosen::ManagedIdentity {
                client_id: Some(id),
            } => write!(
                f,
                "managed identity (user-assigned client id {})",
                abbreviate(id)
            ),
            Chosen::AzureCli => f.write_str("Azure CLI (the signed-in account)"),
        }
    }
}

/// The first characters of an id: enough to recognise it in a log, short enough to keep lines
/// readable.
fn abbreviate(id: &str) -> String {
    const KEEP: usize = 4;
    if id.chars().count() <= KEEP {
        id.to_owned()
    } else {
        let head: String = id.chars().take(KEEP).collect();
        format!("{head}…")
    }
}

/// Decides which credential to use from `kind` and the environment. Pure: reads `env` only.
pub fn choose(kind: CredentialKind, env: &dyn EnvSource) -> Result<Chosen, ConfigError> {
    match kind {
        CredentialKind::Auto => {
            if optional(env, CLIENT_SECRET).is_some() {
                client_secret(env, &format!("is required when {CLIENT_SECRET} is set"))
            } else if optional(env, FEDERATED_TOKEN_FILE).is_some() {
                workload_identity(
                    env,
                    &format!("is required when {FEDERATED_TOKEN_FILE} is set"),
                )
            } else if optional(env, IDENTITY_ENDPOINT).is_some()
                && optional(env, IDENTITY_HEADER).is_some()
            {
                Ok(managed_identity(env))
            } else {
                Ok(Chosen::AzureCli)
            }
        }
        CredentialKind::ClientSecret => client_secret(
            env,
            &format!("is required when {CREDENTIAL_VAR}=client-secret"),
        ),
        CredentialKind::WorkloadIdentity => workload_identity(
            env,
            &format!("is required when {CREDENTIAL_VAR}=workload-identity"),
        ),
        CredentialKind::ManagedIdentity => Ok(managed_identity(env)),
        CredentialKind::AzureCli => Ok(Chosen::AzureCli),
    }
}

/// Constructs the chosen credential. Fails only when `azure_identity` rejects the values (for
/// example a malformed tenant id) or finds its own environment incomplete.
pub fn build(chosen: &Chosen) -> Result<Arc<dyn TokenCredential>, ConfigError> {
    let failed = |what: &str, e: azure_core::Error| {
        ConfigError::new(
            CREDENTIAL_VAR,
            format!(
                "could not set up the {what} credential: {}",
                crate::secret::redact_url_secrets(&e.to_string())
            ),
        )
    };
    match chosen {
        Chosen::ClientSecret {
            tenant_id,
            client_id,
            secret,
        } => {
            let secret = azure_core::credentials::Secret::new(secret.expose().to_owned());
            let credential =
                ClientSecretCredential::new(tenant_id, client_id.clone(), secret, None)
                    .map_err(|e| failed("client secret", e))?;
            Ok(credential)
        }
        Chosen::WorkloadIdentity {
            tenant_id,
            client_id,
            token_file,
        } => {
            let options = WorkloadIdentityCredentialOptions {
                tenant_id: Some(tenant_id.clone()),
                client_id: Some(client_id.clone()),
                token_file_path: Some(token_file.clone()),
                ..Default::default()
            };
            let credential = WorkloadIdentityCredential::new(Some(options))
                .map_err(|e| failed("workload identity", e))?;
            Ok(credential)
        }
        Chosen::ManagedIdentity { client_id } => {
            let options = ManagedIdentityCredentialOptions {
                user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                ..Default::default()
            };
            let credential = ManagedIdentityCredential::new(Some(options))
                .map_err(|e| failed("managed identity", e))?;
            Ok(credential)
        }
        Chosen::AzureCli => {
            let credential = AzureCliCredential::new(None).map_err(|e| failed("Azure CLI", e))?;
            Ok(credential)
        }
    }
}

/// Values that must all be set, or an error naming every missing one.
fn all_set<const N: usize>(
    env: &dyn EnvSource,
    vars: [&str; N],
    problem: &str,
) -> Result<[String; N], ConfigError> {
    let values = vars.map(|v| optional(env, v));
    let missing: Vec<&str> = vars
        .iter()
        .zip(&values)
        .filter(|(_, value)| value.is_none())
        .map(|(var, _)| *var)
        .collect();
    if !missing.is_empty() {
        return Err(ConfigError::new(&missing.join(", "), problem));
    }
    Ok(values.map(Option::unwrap_or_default))
}

fn client_secret(env: &dyn EnvSource, problem: &str) -> Result<Chosen, ConfigError> {
    let [tenant_id, client_id, secret] =
        all_set(env, [TENANT_ID, CLIENT_ID, CLIENT_SECRET], problem)?;
    Ok(Chosen::ClientSecret {
        tenant_id,
        client_id,
        secret: Secret::new(secret),
    })
}

fn workload_identity(env: &dyn EnvSource, problem: &str) -> Result<Chosen, ConfigError> {
    let [tenant_id, client_id, token_file] =
        all_set(env, [TENANT_ID, CLIENT_ID, FEDERATED_TOKEN_FILE], problem)?;
    Ok(Chosen::WorkloadIdentity {
        tenant_id,
        client_id,
        token_file: PathBuf::from(token_file),
    })
}

fn managed_identity(env: &dyn EnvSource) -> Chosen {
    Chosen::ManagedIdentity {
        client_id: optional(env, CLIENT_ID),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn auto(vars: &[(&'static str, &'static str)]) -> Result<Chosen, ConfigError> {
        let env: HashMap<&str, &str> = vars.iter().copied().collect();
        choose(CredentialKind::Auto, &env)
    }

    #[test]
    fn kind_parses_known_names_and_defaults_to_auto() {
        let env: HashMap<&str, &str> = HashMap::new();
        assert_eq!(CredentialKind::from_env(&env), Ok(CredentialKind::Auto));
        let env = HashMap::from([(CREDENTIAL_VAR, "Managed-Identity")]);
        assert_eq!(
            CredentialKind::from_env(&env),
            Ok(CredentialKind::ManagedIdentity)
        );
        for (name, kind) in [
            ("auto", CredentialKind::Auto),
            ("client-secret", CredentialKind::ClientSecret),
            ("workload-identity", CredentialKind::WorkloadIdentity),
            ("managed-identity", CredentialKind::ManagedIdentity),
            ("azure-cli", CredentialKind::AzureCli),
        ] {
            assert_eq!(name.parse::<CredentialKind>(), Ok(kind));
        }
    }

    #[test]
    fn unknown_kind_is_a_clear_error() {
        let env = HashMap::from([(CREDENTIAL_VAR, "msi")]);
        let e = CredentialKind::from_env(&env).unwrap_err();
        assert_eq!(e.var, CREDENTIAL_VAR);
        assert!(
            e.problem
                .contains("`msi` is not one of auto, client-secret"),
            "{e}"
        );
    }

    #[test]
    fn auto_prefers_client_secret() {
        let chosen = auto(&[
            (TENANT_ID, "tenant-1"),
            (CLIENT_ID, "client-1"),
            (CLIENT_SECRET, "s3cret"),
            (FEDERATED_TOKEN_FILE, "/var/run/token"),
            (IDENTITY_ENDPOINT, "http://localhost/msi"),
            (IDENTITY_HEADER, "h"),
        ])
        .unwrap();
        assert!(matches!(chosen, Chosen::ClientSecret { .. }), "{chosen:?}");
        let shown = format!("{chosen} {chosen:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert_eq!(
            chosen.to_string(),
            "client secret (tenant tena…, client id clie…)"
        );
    }

    #[test]
    fn client_secret_names_the_missing_ids() {
        let e = auto(&[(CLIENT_SECRET, "s3cret"), (CLIENT_ID, "client-1")]).unwrap_err();
        assert_eq!(e.var, TENANT_ID);
        assert!(e.problem.contains("AZURE_CLIENT_SECRET is set"), "{e}");
        let e = auto(&[(CLIENT_SECRET, "s3cret"), (TENANT_ID, "t")]).unwrap_err();
        assert_eq!(e.var, CLIENT_ID);
        let e = auto(&[(CLIENT_SECRET, "s3cret")]).unwrap_err();
        assert_eq!(e.var, "AZURE_TENANT_ID, AZURE_CLIENT_ID");
        assert!(!e.to_string().contains("s3cret"));
    }

    #[test]
    fn auto_picks_workload_identity_from_the_token_file() {
        let chosen = auto(&[
            (TENANT_ID, "tenant-1"),
            (CLIENT_ID, "client-1"),
            (FEDERATED_TOKEN_FILE, "/var/run/token"),
        ])
        .unwrap();
        assert_eq!(
            chosen,
            Chosen::WorkloadIdentity {
                tenant_id: "tenant-1".into(),
                client_id: "client-1".into(),
                token_file: PathBuf::from("/var/run/token"),
            }
        );
        let e = auto(&[(FEDERATED_TOKEN_FILE, "/var/run/token")]).unwrap_err();
        assert_eq!(e.var, "AZURE_TENANT_ID, AZURE_CLIENT_ID");
    }

    #[test]
    fn auto_picks_managed_identity_when_both_identity_vars_are_set() {
        let system = auto(&[
            (IDENTITY_ENDPOINT, "http://localhost/msi"),
            (IDENTITY_HEADER, "h"),
        ]);
        assert_eq!(system, Ok(Chosen::ManagedIdentity { client_id: None }));
        assert_eq!(
            system.unwrap().to_string(),
            "managed identity (system-assigned)"
        );
        let user = auto(&[
            (IDENTITY_ENDPOINT, "http://localhost/msi"),
            (IDENTITY_HEADER, "h"),
            (CLIENT_ID, "12345678-aaaa"),
        ])
        .unwrap();
        assert_eq!(
            user.to_string(),
            "managed identity (user-assigned client id 1234…)"
        );
    }

    #[test]
    fn auto_falls_back_to_the_azure_cli() {
        assert_eq!(auto(&[]), Ok(Chosen::AzureCli));
        // One of the two managed-identity variables is not enough.
        assert_eq!(
            auto(&[(IDENTITY_ENDPOINT, "http://localhost/msi")]),
            Ok(Chosen::AzureCli)
        );
        // A blank secret counts as unset.
        assert_eq!(auto(&[(CLIENT_SECRET, "  ")]), Ok(Chosen::AzureCli));
    }

    #[test]
    fn explicit_kinds_ignore_the_auto_order() {
        let env = HashMap::from([(CLIENT_SECRET, "s3cret"), (CLIENT_ID, "c")]);
        assert_eq!(
            choose(CredentialKind::ManagedIdentity, &env),
            Ok(Chosen::ManagedIdentity {
                client_id: Some("c".into())
            })
        );
        assert_eq!(choose(CredentialKind::AzureCli, &env), Ok(Chosen::AzureCli));
        let e = choose(CredentialKind::WorkloadIdentity, &env).unwrap_err();
        assert_eq!(e.var, "AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE");
        assert!(e.problem.contains("=workload-identity"), "{e}");
        let e = choose(CredentialKind::ClientSecret, &HashMap::<&str, &str>::new()).unwrap_err();
        assert_eq!(
            e.var,
            "AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET"
        );
    }

    #[test]
    fn build_constructs_a_client_secret_credential_without_network() {
        let chosen = auto(&[
            (TENANT_ID, "00000000-0000-0000-0000-000000000001"),
            (CLIENT_ID, "client-1"),
            (CLIENT_SECRET, "s3cret"),
        ])
        .unwrap();
        assert!(build(&chosen).is_ok());
    }
}
