//! [`AzureBlobStore`]: one container on Azure Storage (or Azurite), over the GA
//! `azure_storage_blob` 1.x crate.
//!
//! Same account and authorization forms as the queue ([`crate::queue::azure`]): a connection
//! string (account key turned into our own account SAS, renewed before it ends; or a SAS) or
//! an endpoint with an Entra ID credential. The SDK's retries are off; every call runs in the
//! shared bounded loop ([`RetryBudget`]) and its failures are classified as the queue's are.
//!
//! Errors map to [`BlobError`]: 409 `BlobAlreadyExists` is `AlreadyExists`, 412 (a stale ETag,
//! a missing blob on replace, `AppendPositionConditionNotMet`) `ConditionNotMet`, 401/403
//! `Forbidden`, transient failures that outlast the budget `Unavailable`; a 404 on read is
//! `Ok(None)`. Every message passes through [`redact_url_secrets`].

use super::settings::{BlobSettings, BlobTarget, validate_container_name};
use super::{Blob, BlobError, BlobStore, ETag, ListPage, Listed, Metadata};
use crate::queue::retry::RetryBudget;
use crate::secret::{Secret, redact_url_secrets};
use crate::storage::auth::{Auth, Renewing};
use crate::storage::failure::{Failure, error_chain};
use crate::storage::retry::{InFlight, MAX_IN_FLIGHT};
use async_trait::async_trait;
use azure_core::Bytes;
use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, Etag, RetryOptions, Transport};
use azure_storage_blob::models::{
    AppendBlobClientAppendBlockOptions, AppendBlobClientCreateOptions, BlobClientUploadOptions,
    BlobContainerClientListBlobsOptions, ListBlobsIncludeItem,
};
use azure_storage_blob::{BlobContainerClient, BlobServiceClient, BlobServiceClientOptions};
use futures::StreamExt as _;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use time::OffsetDateTime;
use url::Url;

/// Most blobs one listing page may return (the service's own limit).
pub const MAX_PAGE_SIZE: u32 = 5000;

/// One container on Azure Storage. See the module doc.
pub struct AzureBlobStore {
    endpoint: Url,
    container: String,
    auth: Auth,
    options: BlobServiceClientOptions,
    budget: RetryBudget,
    /// Requests under way at once, at most [`MAX_IN_FLIGHT`].
    in_flight: InFlight,
    page_size: u32,
    clients: Renewing<BlobContainerClient>,
}

impl AzureBlobStore {
    /// Builds the client; does not contact the service. `credential` is required for
    /// [`BlobTarget::Endpoint`] and unused for a connection string.
    pub fn new(
        settings: BlobSettings,
        credential: Option<Arc<dyn TokenCredential>>,
    ) -> Result<Self, BlobError> {
        validate_container_name(&settings.container).map_err(BlobError::Other)?;
        let (endpoint, auth) = match settings.target {
            BlobTarget::ConnectionString { endpoint, auth } => {
                (endpoint, Auth::from_connection(auth))
            }
            BlobTarget::Endpoint(url) => {
                let Some(credential) = credential else {
                    return Err(BlobError::Other(
                        "a blob endpoint needs an Entra ID credential".into(),
                    ));
                };
                (url, Auth::Token(credential))
            }
        };
        let http = crate::tls::http_client()
            .connect_timeout(settings.budget.per_try_timeout)
            .timeout(settings.budget.per_try_timeout)
            // Never more connections kept than requests that can be under way.
            .pool_max_idle_per_host(MAX_IN_FLIGHT)
            .build()
            .map_err(|e| BlobError::Other(redact_url_secrets(&error_chain(&e))))?;
        let options = BlobServiceClientOptions {
            client_options: ClientOptions {
                retry: RetryOptions::none(),
                transport: Some(Transport::new(Arc::new(http))),
                ..Default::default()
            },
            ..Default::default()
        };
        let now = OffsetDateTime::now_utc();
        let (client, renew_at) = build(&endpoint, &settings.container, &auth, &options, now)
            .map_err(|f| BlobError::Other(f.message))?;
        Ok(AzureBlobStore {
            endpoint,
            container: settings.container,
            auth,
            options,
            budget: settings.budget,
            in_flight: InFlight::default(),
            page_size: MAX_PAGE_SIZE,
            clients: Renewing::new(client, renew_at),
        })
    }

    /// At most `size` blobs per listing page (1..=5000), e.g. to test paging with few blobs.
    pub fn with_page_size(mut self, size: u32) -> Self {
        self.page_size = size.clamp(1, MAX_PAGE_SIZE);
        self
    }

    /// The container name.
    pub fn container(&self) -> &str {
        &self.container
    }

    /// Runs `call` within the retry budget, with the client renewed first if our SAS is about
    /// to end; the last failure becomes the caller's error.
    #[tracing::instrument(level = "debug", skip_all, fields(container = %self.container, op = op, blob = name))]
    async fn run<T, F, Fut>(&self, op: &'static str, name: &str, call: F) -> Result<T, Failure>
    where
        F: Fn(Arc<BlobContainerClient>) -> Fut,
        Fut: Future<Output = azure_core::Result<T>>,
    {
        let clients = || {
            self.clients.current(|now| {
                build(
                    &self.endpoint,
                    &self.container,
                    &self.auth,
                    &self.options,
                    now,
                )
            })
        };
        crate::storage::retry::run(&self.budget, &self.in_flight, clients, call).await
    }

    /// The error the caller of `op` on blob `name` gets for its last failed try.
    fn error(&self, failure: Failure, op: &str, name: &str) -> BlobError {
        let text = redact_url_secrets(&format!(
            "{op} `{}/{name}`: {}",
            self.container, failure.message
        ));
        if let Some(n) = failure.exhausted_after {
            return BlobError::Unavailable(format!("{text} (gave up after {n} tries)"));
        }
        match (failure.status, failure.code.as_deref()) {
            (Some(409), Some("BlobAlreadyExists")) => BlobError::AlreadyExists,
            (Some(412), _) => BlobError::ConditionNotMet,
            (Some(401 | 403), _) => BlobError::Forbidden(text),
            _ if failure.transient => BlobError::Unavailable(text),
            _ => BlobError::Other(text),
        }
    }
}

/// The container client for `endpoint`, with a SAS in its query or a credential, and when to
/// build a new one.
fn build(
    endpoint: &Url,
    container: &str,
    auth: &Auth,
    options: &BlobServiceClientOptions,
    now: OffsetDateTime,
) -> Result<(BlobContainerClient, Option<OffsetDateTime>), Failure> {
    let signed = auth
        .sign(endpoint, now)
        .map_err(|e| Failure::permanent(&format!("cannot sign an account SAS: {e}")))?;
    let mut url = endpoint.clone();
    url.set_query(signed.query.as_ref().map(Secret::expose));
    let service = BlobServiceClient::new(url, signed.credential, Some(options.clone()))
        .map_err(|e| Failure::permanent(&error_chain(&e)))?;
    Ok((service.blob_container_client(container), signed.renew_at))
}

/// `If-Match` wants the quoted form; [`ETag`] keeps it without quotes.
fn quoted(etag: &ETag) -> Etag {
    Etag::from(format!("\"{}\"", etag.0))
}

fn etag_of(etag: Option<Etag>, op: &str) -> Result<ETag, BlobError> {
    etag.map(|e| ETag::new(e.as_ref()))
        .ok_or_else(|| BlobError::Other(format!("{op}: the answer has no ETag")))
}

fn metadata_map(metadata: &Metadata) -> HashMap<String, String> {
    metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// No secrets: the endpoint carries no query, the auth shows only its kind.
impl fmt::Debug for AzureBlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureBlobStore")
            .field("endpoint", &self.endpoint.as_str())
            .field("container", &self.container)
            .field("auth", &self.auth.kind())
            .field("budget", &self.budget)
            .field("page_size", &self.page_size)
            .finish()
    }
}

#[async_trait]
impl BlobStore for AzureBlobStore {
    async fn ensure_container(&self) -> Result<(), BlobError> {
        const OP: &str = "create container";
        match self
            .run(OP, "", |c| async move { c.create(None).await })
            .await
        {
            Ok(_) => Ok(()),
            Err(f) if f.status == Some(409) => Ok(()),
            // A bad key or SAS would fail every later call: report it now.
            Err(f) if f.forbidden_for_this_operation_only() => {
                tracing::debug!(container = %self.container, error = %f.message, "may not create containers; assuming the deployment created it");
                Ok(())
            }
            Err(f) => Err(self.error(f, OP, "")),
        }
    }

    async fn create(
        &self,
        name: &str,
        body: Vec<u8>,
        metadata: &Metadata,
    ) -> Result<ETag, BlobError> {
        const OP: &str = "create blob";
        let body = Bytes::from(body);
        let metadata = metadata_map(metadata);
        let result = self
            .run(OP, name, |c| {
                let options = BlobClientUploadOptions {
                    metadata: Some(metadata.clone()),
                    ..Default::default()
                }
                .if_not_exists();
                let body = body.clone();
                async move { c.blob_client(name).upload(body.into(), Some(options)).await }
            })
            .await
            .map_err(|f| self.error(f, OP, name))?;
        etag_of(result.etag, OP)
    }

    async fn replace(
        &self,
        name: &str,
        body: Vec<u8>,
        metadata: &Metadata,
        if_match: &ETag,
    ) -> Result<ETag, BlobError> {
        const OP: &str = "replace blob";
        let body = Bytes::from(body);
        let metadata = metadata_map(metadata);
        let result = self
            .run(OP, name, |c| {
                let options = BlobClientUploadOptions {
                    metadata: Some(metadata.clone()),
                    if_match: Some(quoted(if_match)),
                    ..Default::default()
                };
                let body = body.clone();
                async move { c.blob_client(name).upload(body.into(), Some(options)).await }
            })
            .await
            .map_err(|f| self.error(f, OP, name))?;
        etag_of(result.etag, OP)
    }

    async fn read(&self, name: &str) -> Result<Option<Blob>, BlobError> {
        const OP: &str = "read blob";
        let result = self
            .run(OP, name, |c| async move {
                let download = c.blob_client(name).download(None).await?;
                let body = download.body.collect().await?;
                Ok((body, download.properties))
            })
            .await;
        let (body, properties) = match result {
            Ok(found) => found,
            Err(f) if f.status == Some(404) && f.code.as_deref() != Some("ContainerNotFound") => {
                return Ok(None);
            }
            Err(f) => return Err(self.error(f, OP, name)),
        };
        Ok(Some(Blob {
            body: body.to_vec(),
            etag: etag_of(properties.etag, OP)?,
            metadata: properties.metadata.into_iter().collect(),
        }))
    }

    async fn list(&self, prefix: &str, marker: Option<&str>) -> Result<ListPage, BlobError> {
        const OP: &str = "list blobs";
        let page_size = i32::try_from(self.page_size).unwrap_or(5000);
        let page = self
            .run(OP, prefix, |c| async move {
                let options = BlobContainerClientListBlobsOptions {
                    prefix: Some(prefix.to_owned()),
                    marker: marker.map(str::to_owned),
                    maxresults: Some(page_size),
                    include: Some(vec![ListBlobsIncludeItem::Metadata]),
                    ..Default::default()
                };
                let mut pages = c.list_blobs(Some(options))?.into_pages();
                match pages.next().await {
                    Some(page) => page?.into_model().map(Some),
                    None => Ok(None),
                }
            })
            .await
            .map_err(|f| self.error(f, OP, prefix))?;
        let Some(page) = page else {
            return Ok(ListPage::default());
        };
        let mut blobs = Vec::with_capacity(page.blob_items.len());
        for item in page.blob_items {
            let (Some(name), Some(etag)) = (item.name, item.properties.and_then(|p| p.etag)) else {
                return Err(BlobError::Other(format!(
                    "{OP} `{}/{prefix}`: a listed blob has no name or ETag",
                    self.container
                )));
            };
            blobs.push(Listed {
                name,
                etag: ETag::new(etag.as_ref()),
                metadata: item
                    .metadata
                    .and_then(|m| m.values)
                    .unwrap_or_default()
                    .into_iter()
                    .collect(),
            });
        }
        Ok(ListPage {
            blobs,
            next_marker: page.next_marker.filter(|m| !m.is_empty()),
        })
    }

    async fn create_append(&self, name: &str) -> Result<bool, BlobError> {
        const OP: &str = "create append blob";
        let result = self
            .run(OP, name, |c| async move {
                let options = AppendBlobClientCreateOptions::default().if_not_exists();
                c.blob_client(name)
                    .append_blob_client()
                    .create(Some(options))
                    .await
            })
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(f) => match self.error(f, OP, name) {
                // `If-None-Match: *` is answered 409 or, by the reference, 412.
                BlobError::AlreadyExists | BlobError::ConditionNotMet => Ok(false),
                e => Err(e),
            },
        }
    }

    async fn append(&self, name: &str, block: Vec<u8>, position: u64) -> Result<(), BlobError> {
        const OP: &str = "append block";
        let position = i64::try_from(position)
            .map_err(|_| BlobError::Other(format!("{OP}: position {position} is too large")))?;
        let length = block.len() as u64;
        let block = Bytes::from(block);
        self.run(OP, name, |c| {
            let options = AppendBlobClientAppendBlockOptions {
                append_position: Some(position),
                ..Default::default()
            };
            let block = block.clone();
            async move {
                c.blob_client(name)
                    .append_blob_client()
                    .append_block(block.into(), length, Some(options))
                    .await
            }
        })
        .await
        .map(drop)
        .map_err(|f| self.error(f, OP, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::connection::ConnectionString;

    fn store(connection: &str) -> AzureBlobStore {
        let c: ConnectionString = connection.parse().unwrap();
        AzureBlobStore::new(
            BlobSettings {
                target: BlobTarget::ConnectionString {
                    endpoint: c.blob_endpoint().unwrap().clone(),
                    auth: c.auth,
                },
                container: "jobs".into(),
                budget: RetryBudget {
                    attempts: 2,
                    per_try_timeout: std::time::Duration::from_millis(300),
                    total: None,
                    first_backoff: std::time::Duration::from_millis(10),
                    max_backoff: std::time::Duration::from_millis(10),
                    jitter: false,
                },
            },
            None,
        )
        .unwrap()
    }

    #[test]
    fn debug_shows_no_secret() {
        let s = store(
            "QueueEndpoint=http://127.0.0.1:1/a;BlobEndpoint=http://127.0.0.1:1/a;SharedAccessSignature=sv=1&sig=SECRETSIG",
        );
        let d = format!("{s:?}");
        assert!(!d.contains("SECRETSIG") && d.contains("jobs"), "{d}");
    }

    #[test]
    fn our_own_sas_is_renewed_and_a_given_one_is_not() {
        let s = store("UseDevelopmentStorage=true");
        let renew_at = s.clients.renew_at().unwrap();
        assert!(renew_at > OffsetDateTime::now_utc() + std::time::Duration::from_secs(22 * 3600));
        let s = store(
            "QueueEndpoint=https://a.queue.core.windows.net;BlobEndpoint=https://a.blob.core.windows.net;SharedAccessSignature=sv=1&sig=abc",
        );
        assert_eq!(s.clients.renew_at(), None);
    }

    #[test]
    fn a_blob_endpoint_needs_a_credential() {
        let e = AzureBlobStore::new(
            BlobSettings {
                target: BlobTarget::Endpoint(
                    Url::parse("https://a.blob.core.windows.net").unwrap(),
                ),
                container: "jobs".into(),
                budget: RetryBudget::interactive(),
            },
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("Entra ID credential"), "{e}");
    }

    /// Nothing listens on port 1: every try is refused, the budget runs out, and the error
    /// (which quotes the request URL) must not carry the signature.
    #[tokio::test]
    async fn unreachable_storage_is_unavailable_and_the_error_has_no_signature() {
        let s = store(
            "QueueEndpoint=http://127.0.0.1:1/a;BlobEndpoint=http://127.0.0.1:1/devstoreaccount1;SharedAccessSignature=sv=2022-11-02&ss=bq&sig=SECRETSIG%3D",
        );
        let e = s.read("jobs/x.json").await.unwrap_err();
        assert!(matches!(e, BlobError::Unavailable(_)), "{e:?}");
        let text = e.to_string();
        assert!(!text.contains("SECRETSIG"), "{text}");
        assert!(text.contains("gave up after 2 tries"), "{text}");
    }
}
