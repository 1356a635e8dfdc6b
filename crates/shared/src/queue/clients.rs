//! The SDK clients for the queue and its poison queue ([`Clients`]), and what they are built
//! from ([`Target`]): endpoint, names, options and [`Auth`]. An account key is turned into an
//! account SAS we sign ourselves ([`super::sas`]), valid 24 h; the clients record when to sign a
//! new one and rebuild.

use super::QueueError;
use super::failure::error_chain;
use super::sas::{SasProtocol, account_sas};
use crate::secret::{Secret, redact_url_secrets};
use azure_core::credentials::TokenCredential;
use azure_storage_queue::{QueueClient, QueueClientOptions};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use url::Url;

/// How long a SAS we sign is valid, and how long before its end we replace it.
const SAS_VALIDITY: Duration = Duration::from_secs(24 * 3600);
const SAS_RENEW_BEFORE: Duration = Duration::from_secs(3600);

/// What the clients are built from (immutable).
pub(super) struct Target {
    pub(super) endpoint: Url,
    pub(super) name: String,
    pub(super) poison_name: String,
    pub(super) auth: Auth,
    pub(super) options: QueueClientOptions,
}

pub(super) enum Auth {
    SharedKey {
        account_name: String,
        account_key: Secret,
    },
    Sas(Secret),
    Token(Arc<dyn TokenCredential>),
}

pub(super) struct Clients {
    pub(super) queue: QueueClient,
    pub(super) poison: QueueClient,
    /// When to sign a new SAS and rebuild; `None` when nothing expires.
    pub(super) renew_at: Option<OffsetDateTime>,
}

impl Target {
    pub(super) fn build(&self, now: OffsetDateTime) -> Result<Clients, QueueError> {
        let (query, credential, renew_at) = match &self.auth {
            Auth::SharedKey {
                account_name,
                account_key,
            } => {
                let sas = account_sas(
                    account_name,
                    account_key,
                    now + SAS_VALIDITY,
                    SasProtocol::for_endpoint(&self.endpoint),
                )
                .map_err(|e| QueueError::Other(format!("cannot sign an account SAS: {e}")))?;
                (Some(sas), None, Some(now + SAS_VALIDITY - SAS_RENEW_BEFORE))
            }
            Auth::Sas(sas) => (Some(sas.clone()), None, None),
            Auth::Token(credential) => (None, Some(credential.clone()), None),
        };
        let client = |name: &str| -> Result<QueueClient, QueueError> {
            let mut url = self.endpoint.clone();
            url.path_segments_mut()
                .map_err(|()| QueueError::Other("the queue endpoint is not a base URL".into()))?
                .pop_if_empty()
                .push(name);
            url.set_query(query.as_ref().map(Secret::expose));
            QueueClient::new(url, credential.clone(), Some(self.options.clone()))
                .map_err(|e| QueueError::Other(redact_url_secrets(&error_chain(&e))))
        };
        Ok(Clients {
            queue: client(&self.name)?,
            poison: client(&self.poison_name)?,
            renew_at,
        })
    }
}
