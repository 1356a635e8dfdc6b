//! The SDK clients for the queue and its poison queue ([`Clients`]), and what they are built
//! from ([`Target`]): endpoint, names, options and [`Auth`] (shared with blobs, which also
//! decides when our own SAS is renewed).

use super::QueueError;
use super::failure::error_chain;
use crate::secret::{Secret, redact_url_secrets};
pub(super) use crate::storage::auth::Auth;
use azure_storage_queue::{QueueClient, QueueClientOptions};
use time::OffsetDateTime;
use url::Url;

/// What the clients are built from (immutable).
pub(super) struct Target {
    pub(super) endpoint: Url,
    pub(super) name: String,
    pub(super) poison_name: String,
    pub(super) auth: Auth,
    pub(super) options: QueueClientOptions,
}

pub(super) struct Clients {
    pub(super) queue: QueueClient,
    pub(super) poison: QueueClient,
}

impl Target {
    /// The clients, and when to build new ones (`None` when nothing expires).
    pub(super) fn build(
        &self,
        now: OffsetDateTime,
    ) -> Result<(Clients, Option<OffsetDateTime>), QueueError> {
        let signed = self
            .auth
            .sign(&self.endpoint, now)
            .map_err(|e| QueueError::Other(format!("cannot sign an account SAS: {e}")))?;
        let client = |name: &str| -> Result<QueueClient, QueueError> {
            let mut url = self.endpoint.clone();
            url.path_segments_mut()
                .map_err(|()| QueueError::Other("the queue endpoint is not a base URL".into()))?
                .pop_if_empty()
                .push(name);
            url.set_query(signed.query.as_ref().map(Secret::expose));
            QueueClient::new(url, signed.credential.clone(), Some(self.options.clone()))
                .map_err(|e| QueueError::Other(redact_url_secrets(&error_chain(&e))))
        };
        Ok((
            Clients {
                queue: client(&self.name)?,
                poison: client(&self.poison_name)?,
            },
            signed.renew_at,
        ))
    }
}
