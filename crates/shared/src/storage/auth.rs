//! [`Auth`]: how storage requests are authorized, and [`Renewing`]: SDK clients rebuilt when
//! the account SAS we signed ourselves nears its end.
//!
//! An account key is turned into an account SAS ([`crate::queue::sas`]), valid 24 h and
//! replaced, with new clients, when less than 1 h remains.

use super::failure::Failure;
use crate::queue::connection::StorageAuth;
use crate::queue::sas::{SasError, SasProtocol, account_sas};
use crate::secret::Secret;
use azure_core::credentials::TokenCredential;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;
use time::OffsetDateTime;
use url::Url;

/// How long a SAS we sign is valid, and how long before its end we replace it.
const SAS_VALIDITY: Duration = Duration::from_secs(24 * 3600);
const SAS_RENEW_BEFORE: Duration = Duration::from_secs(3600);

pub(crate) enum Auth {
    SharedKey {
        account_name: String,
        account_key: Secret,
    },
    Sas(Secret),
    Token(Arc<dyn TokenCredential>),
}

/// What clients built at one moment use: a SAS for the URL's query or a credential, and when
/// to build new ones (`None` when nothing expires).
pub(crate) struct Signed {
    pub(crate) query: Option<Secret>,
    pub(crate) credential: Option<Arc<dyn TokenCredential>>,
    pub(crate) renew_at: Option<OffsetDateTime>,
}

impl Auth {
    pub(crate) fn from_connection(auth: StorageAuth) -> Self {
        match auth {
            StorageAuth::SharedKey {
                account_name,
                account_key,
            } => Auth::SharedKey {
                account_name,
                account_key,
            },
            StorageAuth::Sas(sas) => Auth::Sas(sas),
        }
    }

    /// What clients for `endpoint` built `now` use.
    pub(crate) fn sign(&self, endpoint: &Url, now: OffsetDateTime) -> Result<Signed, SasError> {
        Ok(match self {
            Auth::SharedKey {
                account_name,
                account_key,
            } => Signed {
                query: Some(account_sas(
                    account_name,
                    account_key,
                    now + SAS_VALIDITY,
                    SasProtocol::for_endpoint(endpoint),
                )?),
                credential: None,
                renew_at: Some(now + SAS_VALIDITY - SAS_RENEW_BEFORE),
            },
            Auth::Sas(sas) => Signed {
                query: Some(sas.clone()),
                credential: None,
                renew_at: None,
            },
            Auth::Token(credential) => Signed {
                query: None,
                credential: Some(credential.clone()),
                renew_at: None,
            },
        })
    }

    /// For `Debug` output: the kind only.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Auth::SharedKey { .. } => "account key (own account SAS)",
            Auth::Sas(_) => "SAS",
            Auth::Token(_) => "Entra ID token",
        }
    }
}

/// Clients of type `C` and when to rebuild them; cloned out, never held across an await.
pub(crate) struct Renewing<C> {
    slot: RwLock<(Arc<C>, Option<OffsetDateTime>)>,
}

impl<C> Renewing<C> {
    pub(crate) fn new(clients: C, renew_at: Option<OffsetDateTime>) -> Self {
        Renewing {
            slot: RwLock::new((Arc::new(clients), renew_at)),
        }
    }

    /// The current clients, rebuilt first with `build` when their time has come.
    pub(crate) fn current(
        &self,
        build: impl FnOnce(OffsetDateTime) -> Result<(C, Option<OffsetDateTime>), Failure>,
    ) -> Result<Arc<C>, Failure> {
        let now = OffsetDateTime::now_utc();
        {
            let slot = self.slot.read().unwrap_or_else(PoisonError::into_inner);
            if slot.1.is_none_or(|at| now < at) {
                return Ok(slot.0.clone());
            }
        }
        let mut slot = self.slot.write().unwrap_or_else(PoisonError::into_inner);
        if slot.1.is_some_and(|at| now >= at) {
            let (clients, renew_at) = build(now)?;
            *slot = (Arc::new(clients), renew_at);
            tracing::debug!("signed a new account SAS");
        }
        Ok(slot.0.clone())
    }

    /// When the current clients will be rebuilt.
    #[cfg(test)]
    pub(crate) fn renew_at(&self) -> Option<OffsetDateTime> {
        self.slot.read().unwrap_or_else(PoisonError::into_inner).1
    }

    /// Puts clients in place, e.g. ones built long ago.
    #[cfg(test)]
    pub(crate) fn set(&self, clients: C, renew_at: Option<OffsetDateTime>) {
        *self.slot.write().unwrap_or_else(PoisonError::into_inner) = (Arc::new(clients), renew_at);
    }
}
