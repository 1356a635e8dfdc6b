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

use super::clients::{Auth, Clients, Target};
use super::failure::{Failure, Op, error_chain, into_error, permanent};
use super::settings::POISON_SUFFIX;
use super::{JobQueue, QueueError, Received};
use crate::secret::redact_url_secrets;
use crate::storage::auth::Renewing;
use crate::storage::retry::{InFlight, MAX_IN_FLIGHT};
use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::http::headers::HeaderName;
use azure_core::http::{ClientOptions, RequestContent, RetryOptions, Transport, XmlFormat};
use azure_storage_queue::QueueClientOptions;
use azure_storage_queue::models::{
    QueueClientReceiveMessagesOptions, QueueClientSendMessageOptions,
    QueueClientUpdateMessageOptions, QueueMessage,
};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

pub use super::retry::RetryBudget;
pub use super::settings::{
    CONNECTION_STRING_VAR, DEFAULT_QUEUE_NAME, QUEUE_ENDPOINT_VAR, QUEUE_NAME_VAR, QueueSettings,
    QueueTarget, validate_queue_name,
};

/// Longest visibility timeout the service accepts (7 days).
const MAX_VISIBILITY_SECS: u64 = 7 * 24 * 3600;

/// The queue and its poison queue on Azure Storage. See the module doc.
pub struct AzureJobQueue {
    target: Target,
    budget: RetryBudget,
    /// Requests under way at once, at most [`MAX_IN_FLIGHT`].
    in_flight: InFlight,
    /// Replaced when our own SAS nears its end.
    clients: Renewing<Clients>,
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
                let auth = Auth::from_connection(c.auth);
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
        let http = crate::tls::http_client()
            .connect_timeout(settings.budget.per_try_timeout)
            .timeout(settings.budget.per_try_timeout)
            // Never more connections kept than requests that can be under way.
            .pool_max_idle_per_host(MAX_IN_FLIGHT)
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
        let (clients, renew_at) = target.build(OffsetDateTime::now_utc())?;
        Ok(AzureJobQueue {
            target,
            budget: settings.budget,
            in_flight: InFlight::default(),
            clients: Renewing::new(clients, renew_at),
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
    /// least-privilege roles do not have: the runner samples it for `chatops_queue_depth` when
    /// allowed (Storage Queue Data Reader); tests and operators' tools use it too.
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
            .map_err(|f| into_error(f, Op::Ping, name))?;
        let count = properties
            .approximate_messages_count()
            .map_err(|e| QueueError::Other(redact_url_secrets(&e.to_string())))?;
        Ok(count.and_then(|n| u64::try_from(n).ok()).unwrap_or(0))
    }

    /// Runs `call` within the retry budget, with clients renewed first if our SAS is about to
    /// end. Returns the last failure when it is not transient or the budget is spent.
    #[tracing::instrument(level = "debug", skip_all, fields(queue = queue, op = %op))]
    async fn run<T, F, Fut>(&self, op: Op, queue: &str, call: F) -> Result<T, Failure>
    where
        F: Fn(Arc<Clients>) -> Fut,
        Fut: Future<Output = azure_core::Result<T>>,
    {
        crate::storage::retry::run(&self.budget, &self.in_flight, || self.clients(), call).await
    }

    /// The current clients, renewed first if our SAS is about to end.
    fn clients(&self) -> Result<Arc<Clients>, Failure> {
        self.clients
            .current(|now| self.target.build(now).map_err(permanent))
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
            Err(f) if f.forbidden_for_this_operation_only() => {
                tracing::debug!(queue = name, error = %f.message, "may not create queues; assuming the deployment created it");
                Ok(())
            }
            Err(f) => Err(into_error(f, Op::Create, name)),
        }
    }

    /// Update Message: new invisibility, and new text when given. Returns the new pop receipt.
    async fn update(
        &self,
        message: &Received,
        text: Option<&str>,
        visibility: Duration,
    ) -> Result<String, QueueError> {
        let (id, receipt) = (message.message_id.as_str(), message.pop_receipt.as_str());
        // Update Message accepts 0: the message becomes visible again at once.
        let seconds = visibility_secs(visibility, 0);
        let body = text.map(xml_body).transpose()?;
        let popreceipt = HeaderName::from("x-ms-popreceipt");
        let popreceipt = &popreceipt;
        self.run(Op::Extend, self.name(), |c| {
            let options = body
                .clone()
                .map(|queue_message| QueueClientUpdateMessageOptions {
                    queue_message: Some(queue_message),
                    ..Default::default()
                });
            async move {
                let response = c
                    .queue
                    .update_message(id, receipt, seconds, options)
                    .await?;
                Ok(response.headers().get_optional_string(popreceipt))
            }
        })
        .await
        .map_err(|f| into_error(f, Op::Extend, self.name()))?
        .ok_or_else(|| {
            QueueError::Other("Update Message answered without a new pop receipt".into())
        })
    }

    async fn put(&self, poison: bool, text: &str) -> Result<(), QueueError> {
        let name = if poison {
            self.poison_name()
        } else {
            self.name()
        };
        let body = xml_body(text)?;
        self.run(Op::Send, name, |c| {
            let body = body.clone();
            // Never expire (the default is 7 days): a job message waits for a runner however
            // long they are all down (one too old then is reported Expired, not run), and
            // one held while its job runs past 7 days could not be extended; a poison record
            // waits for an operator.
            let options = QueueClientSendMessageOptions {
                message_time_to_live: Some(NEVER_EXPIRES),
                ..Default::default()
            };
            async move {
                if poison {
                    c.poison.send_message(body, Some(options)).await
                } else {
                    c.queue.send_message(body, Some(options)).await
                }
            }
        })
        .await
        .map(drop)
        .map_err(|f| into_error(f, Op::Send, name))
    }
}

/// Put Message's `messagettl` for a message that does not expire.
const NEVER_EXPIRES: i32 = -1;

/// No secrets: the endpoint carries no query, the auth shows only its kind.
impl fmt::Debug for AzureJobQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = self.target.auth.kind();
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
            Err(f) if f.forbidden_for_this_operation_only() => {
                tracing::debug!(error = %f.message, "queue answered 403 to the readiness check; counting it as reachable");
                Ok(())
            }
            Err(f) => Err(into_error(f, Op::Ping, self.name())),
        }
    }

    async fn send(&self, text: &str) -> Result<(), QueueError> {
        self.put(false, text).await
    }

    async fn approximate_len(&self, poison: bool) -> Result<u64, QueueError> {
        AzureJobQueue::approximate_len(self, poison).await
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
            .map_err(|f| into_error(f, Op::Receive, self.name()))?;
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
        self.update(message, None, visibility).await
    }

    async fn replace(
        &self,
        message: &Received,
        text: &str,
        visibility: Duration,
    ) -> Result<String, QueueError> {
        self.update(message, Some(text), visibility).await
    }

    async fn delete(&self, message: &Received) -> Result<(), QueueError> {
        let (id, receipt) = (message.message_id.as_str(), message.pop_receipt.as_str());
        self.run(Op::Delete, self.name(), |c| async move {
            c.queue.delete_message(id, receipt, None).await
        })
        .await
        .map(drop)
        .map_err(|f| into_error(f, Op::Delete, self.name()))
    }

    async fn send_poison(&self, text: &str) -> Result<(), QueueError> {
        self.put(true, text).await
    }
}

/// Seconds for a visibility timeout: rounded up, within 1 s ..= 7 days.
/// A message text as the XML body the queue service takes.
fn xml_body(text: &str) -> Result<RequestContent<QueueMessage, XmlFormat>, QueueError> {
    let message = QueueMessage {
        message_text: Some(text.to_owned()),
    };
    message
        .try_into()
        .map_err(|e: azure_core::Error| QueueError::Other(redact_url_secrets(&error_chain(&e))))
}

fn visibility_secs(d: Duration, min: u64) -> i32 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i32::try_from(secs.clamp(min, MAX_VISIBILITY_SECS)).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use url::Url;

    fn settings(connection: &str) -> QueueSettings {
        QueueSettings {
            target: QueueTarget::ConnectionString(connection.parse().unwrap()),
            name: "jobs".into(),
            budget: RetryBudget::interactive(),
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
        let renew_at = q.clients.renew_at().unwrap();
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
        let old_url = old.0.queue.url().clone();
        q.clients.set(old.0, old.1);
        let renewed = q.clients().unwrap();
        assert!(q.clients.renew_at().unwrap() > now);
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
        assert_eq!(q.clients.renew_at(), None);
        assert_eq!(
            c.queue.url().as_str(),
            "https://a.queue.core.windows.net/jobs?sv=1&sig=abc"
        );
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
