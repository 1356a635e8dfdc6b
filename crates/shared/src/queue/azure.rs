//! [`AzureJobQueue`]: the job queue on Azure Storage (or Azurite), over the GA
//! `azure_storage_queue` 1.x crate.
//!
//! - **Where and how**: [`QueueSettings::from_env`] reads either a connection string (Azurite,
//!   account key, or SAS) or a queue endpoint used with an Entra ID credential (managed identity).
//!   An account key is turned into an account SAS we sign ourselves ([`super::sas`]), valid 24 h
//!   and renewed, with new clients, when less than 1 h remains.
//! - **Bounded retries**: the SDK's retry policy is off (by default one refused connection takes
//!   over a minute to come back as an error). Every call runs in our own loop, bounded by a
//!   [`RetryBudget`]: a timeout per try, retries only for transient failures (connection and I/O
//!   errors, timeouts, 408, 429, 5xx), exponential backoff. The ingress uses
//!   [`RetryBudget::interactive`] to answer Slack within 3 s; the runner
//!   [`RetryBudget::background`].
//! - **Errors** map to [`QueueError`]: on update/delete, 404 (or 400 `PopReceiptMismatch`) is
//!   `MessageGone`; 401/403 are `Forbidden`; transient failures that outlast the budget are
//!   `Unavailable`. Every message passes through [`redact_url_secrets`], because SDK and HTTP
//!   errors quote the request URL, SAS included.
//!
//! Retrying a Put Message whose answer was lost can enqueue it twice; delivery is at-least-once
//! anyway, so consumers must tolerate duplicates. Likewise an Update or Delete retried after a
//! lost answer may come back as `MessageGone`.

use super::connection::{ConnectionString, StorageAuth};
use super::sas::{SasProtocol, account_sas};
use super::{JobQueue, QueueError, Received};
use crate::config::{ConfigError, EnvSource, optional};
use crate::secret::{Secret, redact_url_secrets};
use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::error::ErrorKind;
use azure_core::http::headers::HeaderName;
use azure_core::http::{ClientOptions, RequestContent, RetryOptions, Transport, XmlFormat};
use azure_storage_queue::models::{QueueClientReceiveMessagesOptions, QueueMessage};
use azure_storage_queue::{QueueClient, QueueClientOptions};
use std::fmt;
use std::future::Future;
use std::hash::BuildHasher;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;
use time::OffsetDateTime;
use url::Url;

/// Connection string (Azurite, account key, or SAS). Exclusive with [`QUEUE_ENDPOINT_VAR`].
pub const CONNECTION_STRING_VAR: &str = "AZURE_STORAGE_CONNECTION_STRING";
/// `https://<account>.queue.core.windows.net`, used with an Entra ID credential.
pub const QUEUE_ENDPOINT_VAR: &str = "AZURE_STORAGE_QUEUE_ENDPOINT";
/// The queue name; its poison queue is `<name>-poison`.
pub const QUEUE_NAME_VAR: &str = "CHATOPS_QUEUE_NAME";
pub const DEFAULT_QUEUE_NAME: &str = "runbook-jobs";
const POISON_SUFFIX: &str = "-poison";

/// How long a SAS we sign is valid, and how long before its end we replace it.
const SAS_VALIDITY: Duration = Duration::from_secs(24 * 3600);
const SAS_RENEW_BEFORE: Duration = Duration::from_secs(3600);
/// Longest visibility timeout the service accepts (7 days).
const MAX_VISIBILITY_SECS: u64 = 7 * 24 * 3600;

/// Where the queue service is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueTarget {
    /// `AZURE_STORAGE_CONNECTION_STRING`: Azurite, account key or SAS.
    ConnectionString(ConnectionString),
    /// `AZURE_STORAGE_QUEUE_ENDPOINT` (https): needs an Entra ID credential.
    Endpoint(Url),
}

/// Everything needed to build an [`AzureJobQueue`] except the credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSettings {
    pub target: QueueTarget,
    /// Validated queue name; the poison queue is `<name>-poison`.
    pub name: String,
    pub budget: RetryBudget,
}

/// How long one queue operation may take in all: tries, per-try timeout, waits between tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryBudget {
    /// Tries in all, the first included (at least one is made).
    pub attempts: u32,
    /// Limit on one try: connecting, sending, and reading the answer.
    pub per_try_timeout: Duration,
    /// Wait before the second try; it doubles before each further one.
    pub first_backoff: Duration,
    /// Cap on one wait.
    pub max_backoff: Duration,
    /// Shorten each wait by a random part of up to half, so that many runners that failed
    /// together do not retry in step.
    pub jitter: bool,
}

impl RetryBudget {
    /// For the ingress, which must answer Slack within 3 s: 3 tries of at most 600 ms, waits of
    /// 100 ms then 200 ms. Worst case 2.1 s.
    pub fn interactive() -> Self {
        RetryBudget {
            attempts: 3,
            per_try_timeout: Duration::from_millis(600),
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(200),
            jitter: false,
        }
    }

    /// For the runner: 5 tries of at most 10 s, waits from 200 ms doubling with jitter, capped
    /// at 5 s.
    pub fn background() -> Self {
        RetryBudget {
            attempts: 5,
            per_try_timeout: Duration::from_secs(10),
            first_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            jitter: true,
        }
    }

    /// The wait after failed try number `failed_try` (1-based).
    pub fn backoff(&self, failed_try: u32) -> Duration {
        let doublings = failed_try.saturating_sub(1).min(16);
        let full = self
            .first_backoff
            .saturating_mul(1 << doublings)
            .min(self.max_backoff);
        if !self.jitter {
            return full;
        }
        // A random fraction in [0, 0.5): std's RandomState is seeded randomly per instance.
        let random = std::hash::RandomState::new().hash_one(failed_try) % 1000;
        full.saturating_sub(full.mul_f64(random as f64 / 2000.0))
    }

    /// The longest one operation can take: every try times out and every wait is full.
    pub fn worst_case(&self) -> Duration {
        let attempts = self.attempts.max(1);
        let waits: Duration = (1..attempts)
            .map(|n| {
                RetryBudget {
                    jitter: false,
                    ..*self
                }
                .backoff(n)
            })
            .sum();
        self.per_try_timeout.saturating_mul(attempts) + waits
    }
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
            (None, Some(_)) => {
                let mut url = crate::config::url(env, QUEUE_ENDPOINT_VAR)?
                    .ok_or_else(|| ConfigError::new(QUEUE_ENDPOINT_VAR, "is required"))?;
                if url.scheme() != "https" {
                    return Err(ConfigError::new(
                        QUEUE_ENDPOINT_VAR,
                        "must be https (Entra ID tokens are only sent over https); for Azurite use \
                         AZURE_STORAGE_CONNECTION_STRING=UseDevelopmentStorage=true",
                    ));
                }
                if url.query().is_some() || url.fragment().is_some() {
                    return Err(ConfigError::new(
                        QUEUE_ENDPOINT_VAR,
                        "must not carry a query string (a SAS goes in AZURE_STORAGE_CONNECTION_STRING)",
                    ));
                }
                let path = url.path().trim_end_matches('/').to_owned();
                url.set_path(&path);
                QueueTarget::Endpoint(url)
            }
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

/// Azure's queue-name rules (3-63 characters; lowercase letters, digits and single hyphens; no
/// hyphen first or last), applied so that `<name>-poison` is valid too.
pub fn validate_queue_name(name: &str) -> Result<(), String> {
    let max = 63 - POISON_SUFFIX.len();
    if name.len() < 3 || name.len() > max {
        return Err(format!(
            "`{name}` must be 3 to {max} characters long (so that `{name}{POISON_SUFFIX}` fits in 63)"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(format!(
            "`{name}` may contain only lowercase letters, digits and hyphens"
        ));
    }
    if name.starts_with('-') || name.ends_with('-') || name.contains("--") {
        return Err(format!(
            "`{name}` must not start or end with a hyphen nor contain two in a row"
        ));
    }
    Ok(())
}

/// The queue and its poison queue on Azure Storage. See the module doc.
pub struct AzureJobQueue {
    target: Target,
    budget: RetryBudget,
    /// Replaced when our own SAS nears its end; cloned out, never held across an await.
    clients: RwLock<Arc<Clients>>,
}

/// What the clients are built from (immutable).
struct Target {
    endpoint: Url,
    name: String,
    poison_name: String,
    auth: Auth,
    options: QueueClientOptions,
}

enum Auth {
    SharedKey {
        account_name: String,
        account_key: Secret,
    },
    Sas(Secret),
    Token(Arc<dyn TokenCredential>),
}

struct Clients {
    queue: QueueClient,
    poison: QueueClient,
    /// When to sign a new SAS and rebuild; `None` when nothing expires.
    renew_at: Option<OffsetDateTime>,
}

impl AzureJobQueue {
    /// Builds the clients; does not contact the service. `credential` is required for
    /// [`QueueTarget::Endpoint`] and unused for a connection string.
    pub fn new(
        settings: QueueSettings,
        credential: Option<Arc<dyn TokenCredential>>,
    ) -> Result<Self, QueueError> {
        validate_queue_name(&settings.name).map_err(QueueError::Other)?;
        let (endpoint, auth) = match settings.target {
            QueueTarget::ConnectionString(c) => {
                let auth = match c.auth {
                    StorageAuth::SharedKey {
                        account_name,
                        account_key,
                    } => Auth::SharedKey {
                        account_name,
                        account_key,
                    },
                    StorageAuth::Sas(sas) => Auth::Sas(sas),
                };
                if credential.is_some() {
                    tracing::debug!(
                        "a connection string is configured; the credential is not used"
                    );
                }
                (c.queue_endpoint, auth)
            }
            QueueTarget::Endpoint(url) => {
                let Some(credential) = credential else {
                    return Err(QueueError::Other(
                        "a queue endpoint needs an Entra ID credential".into(),
                    ));
                };
                (url, Auth::Token(credential))
            }
        };
        let http = reqwest::Client::builder()
            .connect_timeout(settings.budget.per_try_timeout)
            .timeout(settings.budget.per_try_timeout)
            .build()
            .map_err(|e| QueueError::Other(redact_url_secrets(&error_chain(&e))))?;
        let options = QueueClientOptions {
            client_options: ClientOptions {
                retry: RetryOptions::none(),
                transport: Some(Transport::new(Arc::new(http))),
                ..Default::default()
            },
            ..Default::default()
        };
        let target = Target {
            poison_name: format!("{}{POISON_SUFFIX}", settings.name),
            name: settings.name,
            endpoint,
            auth,
            options,
        };
        let clients = target.build(OffsetDateTime::now_utc())?;
        Ok(AzureJobQueue {
            target,
            budget: settings.budget,
            clients: RwLock::new(Arc::new(clients)),
        })
    }

    /// The queue name.
    pub fn name(&self) -> &str {
        &self.target.name
    }

    /// The poison queue name (`<name>-poison`).
    pub fn poison_name(&self) -> &str {
        &self.target.poison_name
    }

    /// The service's approximate count of messages on the job queue (`poison`: the poison
    /// queue), invisible ones included. Needs the right to read queue metadata, which the
    /// least-privilege roles do not have: for tests and operators' tools, not the services.
    pub async fn approximate_len(&self, poison: bool) -> Result<u64, QueueError> {
        use azure_storage_queue::models::QueueClientGetPropertiesResultHeaders as _;
        let name = if poison {
            self.poison_name()
        } else {
            self.name()
        };
        let properties = self
            .run(Op::Ping, name, |c| async move {
                let client = if poison { &c.poison } else { &c.queue };
                client.get_properties(None).await
            })
            .await
            .map_err(|f| f.into_error(Op::Ping, name))?;
        let count = properties
            .approximate_messages_count()
            .map_err(|e| QueueError::Other(redact_url_secrets(&e.to_string())))?;
        Ok(count.and_then(|n| u64::try_from(n).ok()).unwrap_or(0))
    }

    /// The current clients, renewed first if our SAS is about to end.
    fn clients(&self) -> Result<Arc<Clients>, Failure> {
        let now = OffsetDateTime::now_utc();
        let current = self
            .clients
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if current.renew_at.is_none_or(|at| now < at) {
            return Ok(current);
        }
        let mut guard = self.clients.write().unwrap_or_else(PoisonError::into_inner);
        if guard.renew_at.is_some_and(|at| now >= at) {
            *guard = Arc::new(self.target.build(now).map_err(Failure::permanent)?);
            tracing::debug!(queue = %self.target.name, "signed a new account SAS");
        }
        Ok(guard.clone())
    }

    /// Runs `call` within the retry budget. Returns the last failure when it is not transient or
    /// the budget is spent.
    #[tracing::instrument(level = "debug", skip_all, fields(queue = queue, op = %op))]
    async fn run<T, F, Fut>(&self, op: Op, queue: &str, call: F) -> Result<T, Failure>
    where
        F: Fn(Arc<Clients>) -> Fut,
        Fut: Future<Output = azure_core::Result<T>>,
    {
        let attempts = self.budget.attempts.max(1);
        let mut attempt = 1;
        loop {
            let clients = self.clients()?;
            let failure =
                match tokio::time::timeout(self.budget.per_try_timeout, call(clients)).await {
                    Ok(Ok(value)) => return Ok(value),
                    Ok(Err(e)) => Failure::from_sdk(&e),
                    Err(_) => Failure::timeout(self.budget.per_try_timeout),
                };
            if !failure.transient {
                return Err(failure);
            }
            if attempt >= attempts {
                return Err(Failure {
                    exhausted_after: Some(attempts),
                    ..failure
                });
            }
            let wait = self.budget.backoff(attempt);
            tracing::debug!(attempt, error = %failure.message, ?wait, "transient queue failure; retrying");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn create(&self, poison: bool) -> Result<(), QueueError> {
        let name = if poison {
            self.poison_name()
        } else {
            self.name()
        };
        let result = self
            .run(Op::Create, name, |c| async move {
                if poison {
                    c.poison.create(None).await
                } else {
                    c.queue.create(None).await
                }
            })
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(f) if f.status == Some(409) => {
                tracing::debug!(queue = name, "queue exists (with other metadata)");
                Ok(())
            }
            // A bad key or SAS would fail every later call: report it now.
            Err(f)
                if f.status == Some(403) && f.code.as_deref() != Some("AuthenticationFailed") =>
            {
                tracing::debug!(queue = name, error = %f.message, "may not create queues; assuming the deployment created it");
                Ok(())
            }
            Err(f) => Err(f.into_error(Op::Create, name)),
        }
    }

    async fn put(&self, poison: bool, text: &str) -> Result<(), QueueError> {
        let name = if poison {
            self.poison_name()
        } else {
            self.name()
        };
        let message = QueueMessage {
            message_text: Some(text.to_owned()),
        };
        let body: RequestContent<QueueMessage, XmlFormat> =
            message.try_into().map_err(|e: azure_core::Error| {
                QueueError::Other(redact_url_secrets(&error_chain(&e)))
            })?;
        self.run(Op::Send, name, |c| {
            let body = body.clone();
            async move {
                if poison {
                    c.poison.send_message(body, None).await
                } else {
                    c.queue.send_message(body, None).await
                }
            }
        })
        .await
        .map(drop)
        .map_err(|f| f.into_error(Op::Send, name))
    }
}

impl Target {
    fn build(&self, now: OffsetDateTime) -> Result<Clients, QueueError> {
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

/// No secrets: the endpoint carries no query, the auth shows only its kind.
impl fmt::Debug for AzureJobQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match self.target.auth {
            Auth::SharedKey { .. } => "account key (own account SAS)",
            Auth::Sas(_) => "SAS",
            Auth::Token(_) => "Entra ID token",
        };
        f.debug_struct("AzureJobQueue")
            .field("endpoint", &self.target.endpoint.as_str())
            .field("name", &self.target.name)
            .field("poison_name", &self.target.poison_name)
            .field("auth", &auth)
            .field("budget", &self.budget)
            .finish()
    }
}

#[async_trait]
impl JobQueue for AzureJobQueue {
    async fn ensure_exists(&self) -> Result<(), QueueError> {
        self.create(false).await?;
        self.create(true).await
    }

    async fn ping(&self) -> Result<(), QueueError> {
        match self
            .run(Op::Ping, self.name(), |c| async move {
                c.queue.get_properties(None).await
            })
            .await
        {
            Ok(_) => Ok(()),
            // The least-privilege roles (Message Sender, Message Processor) may not read queue
            // metadata: a 403 for that still proves the queue answers. A bad key or SAS does not.
            Err(f)
                if f.status == Some(403) && f.code.as_deref() != Some("AuthenticationFailed") =>
            {
                tracing::debug!(error = %f.message, "queue answered 403 to the readiness check; counting it as reachable");
                Ok(())
            }
            Err(f) => Err(f.into_error(Op::Ping, self.name())),
        }
    }

    async fn send(&self, text: &str) -> Result<(), QueueError> {
        self.put(false, text).await
    }

    async fn receive(&self, max: u8, visibility: Duration) -> Result<Vec<Received>, QueueError> {
        let options = QueueClientReceiveMessagesOptions {
            number_of_messages: Some(i32::from(max.clamp(1, 32))),
            visibility_timeout: Some(visibility_secs(visibility, 1)),
            ..Default::default()
        };
        let messages = self
            .run(Op::Receive, self.name(), |c| {
                let options = options.clone();
                async move { c.queue.receive_messages(Some(options)).await?.into_model() }
            })
            .await
            .map_err(|f| f.into_error(Op::Receive, self.name()))?;
        messages
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                let (Some(message_id), Some(pop_receipt)) = (m.message_id, m.pop_receipt) else {
                    return Err(QueueError::Other(
                        "a received message has no id or pop receipt".into(),
                    ));
                };
                Ok(Received {
                    message_id,
                    pop_receipt,
                    dequeue_count: m
                        .dequeue_count
                        .and_then(|n| u32::try_from(n).ok())
                        .unwrap_or(1),
                    text: m.message_text.unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn extend(&self, message: &Received, visibility: Duration) -> Result<String, QueueError> {
        let (id, receipt) = (message.message_id.as_str(), message.pop_receipt.as_str());
        // Update Message accepts 0: the message becomes visible again at once.
        let seconds = visibility_secs(visibility, 0);
        let popreceipt = HeaderName::from("x-ms-popreceipt");
        let popreceipt = &popreceipt;
        self.run(Op::Extend, self.name(), |c| async move {
            let response = c.queue.update_message(id, receipt, seconds, None).await?;
            Ok(response.headers().get_optional_string(popreceipt))
        })
        .await
        .map_err(|f| f.into_error(Op::Extend, self.name()))?
        .ok_or_else(|| {
            QueueError::Other("Update Message answered without a new pop receipt".into())
        })
    }

    async fn delete(&self, message: &Received) -> Result<(), QueueError> {
        let (id, receipt) = (message.message_id.as_str(), message.pop_receipt.as_str());
        self.run(Op::Delete, self.name(), |c| async move {
            c.queue.delete_message(id, receipt, None).await
        })
        .await
        .map(drop)
        .map_err(|f| f.into_error(Op::Delete, self.name()))
    }

    async fn send_poison(&self, text: &str) -> Result<(), QueueError> {
        self.put(true, text).await
    }
}

/// Seconds for a visibility timeout: rounded up, within 1 s ..= 7 days.
fn visibility_secs(d: Duration, min: u64) -> i32 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i32::try_from(secs.clamp(min, MAX_VISIBILITY_SECS)).unwrap_or(i32::MAX)
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Create,
    Ping,
    Send,
    Receive,
    Extend,
    Delete,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Create => "create queue",
            Op::Ping => "get properties of queue",
            Op::Send => "put message on queue",
            Op::Receive => "get messages from queue",
            Op::Extend => "update message on queue",
            Op::Delete => "delete message from queue",
        })
    }
}

/// One failed try, already redacted.
#[derive(Debug)]
struct Failure {
    status: Option<u16>,
    /// The service's error code (`x-ms-error-code`), e.g. `AuthorizationPermissionMismatch`.
    code: Option<String>,
    transient: bool,
    message: String,
    /// Set when the failure was transient and the budget ran out.
    exhausted_after: Option<u32>,
}

impl Failure {
    fn from_sdk(e: &azure_core::Error) -> Self {
        match e.kind() {
            ErrorKind::HttpResponse {
                status,
                error_code,
                raw_response,
            } => {
                let status = u16::from(*status);
                let mut message = format!("HTTP {status}");
                if let Some(code) = error_code {
                    message.push_str(&format!(" {code}"));
                }
                let detail = raw_response
                    .as_ref()
                    .and_then(|r| xml_message(&String::from_utf8_lossy(r.body())));
                if let Some(detail) = detail {
                    message.push_str(&format!(" ({detail})"));
                }
                Failure {
                    status: Some(status),
                    code: error_code.clone(),
                    transient: status == 408 || status == 429 || status >= 500,
                    message: redact_url_secrets(&message),
                    exhausted_after: None,
                }
            }
            kind => Failure {
                status: None,
                code: None,
                transient: matches!(kind, ErrorKind::Connection | ErrorKind::Io),
                message: redact_url_secrets(&error_chain(e)),
                exhausted_after: None,
            },
        }
    }

    fn timeout(after: Duration) -> Self {
        Failure {
            status: None,
            code: None,
            transient: true,
            message: format!("no answer within {after:?}"),
            exhausted_after: None,
        }
    }

    fn permanent(e: QueueError) -> Self {
        let message = match e {
            QueueError::Other(m) | QueueError::Unavailable(m) | QueueError::Forbidden(m) => m,
            QueueError::MessageGone => e.to_string(),
        };
        Failure {
            status: None,
            code: None,
            transient: false,
            message: redact_url_secrets(&message),
            exhausted_after: None,
        }
    }

    fn into_error(self, op: Op, queue: &str) -> QueueError {
        let text = redact_url_secrets(&format!("{op} `{queue}`: {}", self.message));
        if let Some(n) = self.exhausted_after {
            return QueueError::Unavailable(format!("{text} (gave up after {n} tries)"));
        }
        match self.status {
            // Azure answers 404 MessageNotFound; Azurite (and Azure, per its error code list)
            // 400 PopReceiptMismatch when the receipt was replaced by a later update.
            Some(404) if matches!(op, Op::Extend | Op::Delete) => QueueError::MessageGone,
            Some(400)
                if matches!(op, Op::Extend | Op::Delete)
                    && self.code.as_deref() == Some("PopReceiptMismatch") =>
            {
                QueueError::MessageGone
            }
            Some(401 | 403) => QueueError::Forbidden(text),
            Some(404) => QueueError::Other(format!(
                "{text}: the queue does not exist (create it in the deployment, or call ensure_exists)"
            )),
            _ => QueueError::Other(text),
        }
    }
}

/// `e` and its sources, joined with `: ` (azure_core's `Display` omits the cause, which is
/// where the useful part, such as "Connection refused", is).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

/// The `<Message>` of a Storage XML error body, first line, at most 200 characters.
fn xml_message(body: &str) -> Option<String> {
    let start = body.find("<Message>")? + "<Message>".len();
    let end = start + body[start..].find("</Message>")?;
    let line = body[start..end].lines().next()?.trim();
    Some(line.chars().take(200).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&'static str, &'static str)]) -> HashMap<&'static str, &'static str> {
        pairs.iter().copied().collect()
    }

    fn settings(connection: &str) -> QueueSettings {
        QueueSettings {
            target: QueueTarget::ConnectionString(connection.parse().unwrap()),
            name: "jobs".into(),
            budget: RetryBudget::interactive(),
        }
    }

    #[test]
    fn interactive_budget_fits_slacks_three_seconds() {
        let b = RetryBudget::interactive();
        assert_eq!(b.backoff(1), Duration::from_millis(100));
        assert_eq!(b.backoff(2), Duration::from_millis(200));
        assert_eq!(b.worst_case(), Duration::from_millis(2100));
        assert!(b.worst_case() < Duration::from_millis(2500));
    }

    #[test]
    fn background_backoff_doubles_with_jitter_and_a_cap() {
        let b = RetryBudget::background();
        for n in 1..=10 {
            let full = Duration::from_millis(200 * (1 << (n - 1))).min(Duration::from_secs(5));
            let wait = b.backoff(n);
            assert!(
                wait <= full && wait >= full / 2,
                "try {n}: {wait:?} vs {full:?}"
            );
        }
        assert_eq!(
            b.worst_case(),
            Duration::from_millis(50_000 + 200 + 400 + 800 + 1600)
        );
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

    #[test]
    fn visibility_is_whole_seconds_within_limits() {
        assert_eq!(visibility_secs(Duration::ZERO, 1), 1);
        assert_eq!(visibility_secs(Duration::ZERO, 0), 0);
        assert_eq!(visibility_secs(Duration::from_millis(1500), 1), 2);
        assert_eq!(visibility_secs(Duration::from_secs(30), 1), 30);
        assert_eq!(
            visibility_secs(Duration::from_secs(30 * 24 * 3600), 1),
            604_800
        );
    }

    #[test]
    fn endpoint_target_needs_a_credential() {
        let s = QueueSettings {
            target: QueueTarget::Endpoint(Url::parse("https://a.queue.core.windows.net").unwrap()),
            name: "jobs".into(),
            budget: RetryBudget::interactive(),
        };
        assert!(matches!(
            AzureJobQueue::new(s, None),
            Err(QueueError::Other(_))
        ));
    }

    #[test]
    fn debug_shows_no_secret() {
        let q = AzureJobQueue::new(
            settings(
                "QueueEndpoint=http://127.0.0.1:1/acct;SharedAccessSignature=sv=1&sig=SECRETSIG",
            ),
            None,
        )
        .unwrap();
        let d = format!("{q:?}");
        assert!(!d.contains("SECRETSIG") && d.contains("jobs-poison"), "{d}");
    }

    #[test]
    fn our_own_sas_is_renewed_an_hour_before_it_ends() {
        let q = AzureJobQueue::new(settings("UseDevelopmentStorage=true"), None).unwrap();
        let now = OffsetDateTime::now_utc();
        let renew_at = q.clients().unwrap().renew_at.unwrap();
        assert!(
            renew_at > now + Duration::from_secs(22 * 3600),
            "{renew_at}"
        );
        assert!(renew_at <= now + Duration::from_secs(23 * 3600) + Duration::from_secs(5));

        // Clients signed 23.5 h ago are due: the next call signs a new SAS and rebuilds them.
        let old = q
            .target
            .build(now - Duration::from_secs(23 * 3600 + 1800))
            .unwrap();
        let old_url = old.queue.url().clone();
        *q.clients.write().unwrap() = Arc::new(old);
        let renewed = q.clients().unwrap();
        assert!(renewed.renew_at.unwrap() > now);
        assert_ne!(renewed.queue.url(), &old_url);
        assert_eq!(renewed.queue.url().path(), "/devstoreaccount1/jobs");
        assert_eq!(renewed.poison.url().path(), "/devstoreaccount1/jobs-poison");
    }

    #[test]
    fn a_ready_made_sas_is_used_as_given_and_never_renewed() {
        let q = AzureJobQueue::new(
            settings("QueueEndpoint=https://a.queue.core.windows.net/;SharedAccessSignature=sv=1&sig=abc"),
            None,
        )
        .unwrap();
        let c = q.clients().unwrap();
        assert_eq!(c.renew_at, None);
        assert_eq!(
            c.queue.url().as_str(),
            "https://a.queue.core.windows.net/jobs?sv=1&sig=abc"
        );
    }

    #[test]
    fn xml_error_message_is_extracted() {
        let body = "<?xml version=\"1.0\"?><Error><Code>X</Code><Message>Not allowed.\nRequestId:1</Message></Error>";
        assert_eq!(xml_message(body).as_deref(), Some("Not allowed."));
        assert_eq!(xml_message("nothing"), None);
    }

    /// Nothing listens on port 1: every try is refused, so the budget runs out quickly, and the
    /// error (which quotes the request URL) must not carry the signature.
    #[tokio::test]
    async fn unreachable_queue_is_unavailable_and_the_error_has_no_signature() {
        let sas = "QueueEndpoint=http://127.0.0.1:1/devstoreaccount1;SharedAccessSignature=sv=2022-11-02&ss=q&srt=sco&sp=racup&se=2099-01-01T00%3A00%3A00Z&sig=SECRETSIG%3D";
        let key = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;QueueEndpoint=http://127.0.0.1:1/devstoreaccount1";
        for connection in [sas, key] {
            let q = AzureJobQueue::new(settings(connection), None).unwrap();
            let started = std::time::Instant::now();
            let e = q.send("aGVsbG8=").await.unwrap_err();
            assert!(
                started.elapsed() < Duration::from_millis(2500),
                "{:?}",
                started.elapsed()
            );
            let text = e.to_string();
            assert!(matches!(e, QueueError::Unavailable(_)), "{text}");
            assert!(
                text.contains("127.0.0.1:1"),
                "the URL is quoted, so redaction is tested: {text}"
            );
            assert!(text.contains("sig=REDACTED"), "{text}");
            assert!(!text.contains("SECRETSIG"), "{text}");
            let sig_values: Vec<&str> = text
                .split("sig=")
                .skip(1)
                .map(|rest| rest.split(['&', ')', ' ']).next().unwrap_or(""))
                .collect();
            assert!(sig_values.iter().all(|v| *v == "REDACTED"), "{text}");
        }
    }
}
