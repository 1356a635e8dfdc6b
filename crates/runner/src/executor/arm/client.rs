//! [`ArmClient`]: the jobs API of one Automation account, and the URLs it calls.

use super::budget::ReadBudget;
use super::config::{API_VERSION, ArmConfig};
use super::error::ArmError;
use super::model::{CreateResult, Job, StreamRecord};
use super::retry::RetryPolicy;
use super::transport::{Body, Read, describe, json_body};
use azure_core::credentials::TokenCredential;
use chatops_shared::body::Tail;
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// What [`ArmClient::read_streams_on`] read.
#[derive(Debug, Clone)]
pub struct StreamPages {
    pub records: Vec<StreamRecord>,
    /// Where the next read starts.
    pub last_page: Url,
    /// How many of `records` (the last ones) are on `last_page`.
    pub on_last_page: usize,
}

/// What [`ArmClient::list_pages`] read.
pub(super) struct Listed {
    pub(super) items: Vec<Value>,
    /// False when the list went on past the page limit.
    pub(super) complete: bool,
    /// The last page read (or, past the page limit, the next page not read): where a later
    /// read goes on.
    pub(super) last_page: Url,
    /// How many of `items` (the last ones) are on `last_page`.
    pub(super) on_last_page: usize,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Most pages of stream records read for one job.
const MAX_PAGES: usize = 20;
/// The most of a job's output kept: its end, which is what the chat message shows.
pub const MAX_OUTPUT_TAIL: usize = 32 * 1024;
/// The longest read of a job's output (it is read to its end, however long).
const OUTPUT_TIMEOUT: Duration = Duration::from_secs(600);

/// A client for the jobs of one Automation account.
#[derive(Debug, Clone)]
pub struct ArmClient {
    pub(super) http: reqwest::Client,
    /// `{endpoint}/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Automation/automationAccounts/{account}`.
    pub(super) account_url: Url,
    pub(super) scope: String,
    pub(super) credential: Arc<dyn TokenCredential>,
    pub(super) retry: RetryPolicy,
    /// Every GET waits its turn here; `None`: reads are not paced (tests).
    pub(super) budget: Option<Arc<ReadBudget>>,
}

impl ArmClient {
    pub fn new(config: &ArmConfig, credential: Arc<dyn TokenCredential>) -> Result<Self, ArmError> {
        let http = chatops_shared::tls::http_client()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("chatops-runner/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ArmError::Setup(describe(e)))?;
        let mut account_url = config.endpoint.clone();
        account_url.set_query(None);
        account_url.set_fragment(None);
        account_url
            .path_segments_mut()
            .map_err(|()| ArmError::Setup("CHATOPS_ARM_ENDPOINT is not a base URL".into()))?
            .pop_if_empty()
            .extend([
                "subscriptions",
                &config.subscription_id,
                "resourceGroups",
                &config.resource_group,
                "providers",
                "Microsoft.Automation",
                "automationAccounts",
                &config.account,
            ]);
        Ok(ArmClient {
            http,
            account_url,
            scope: config.scope.clone(),
            credential,
            retry: RetryPolicy::default(),
            budget: config
                .reads_per_second
                .map(|rate| Arc::new(ReadBudget::new(rate))),
        })
    }

    /// Paces this client's reads with `budget` (shared with other clients of the process).
    pub fn with_budget(mut self, budget: Arc<ReadBudget>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// The read budget, when reads are paced.
    pub fn budget(&self) -> Option<&Arc<ReadBudget>> {
        self.budget.as_ref()
    }

    /// Replaces the retry policy (tests use short backoffs).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Starts runbook `runbook` as job `job_name` in Azure's sandbox.
    pub async fn create_job(
        &self,
        job_name: &str,
        runbook: &str,
        params: &[(String, String)],
    ) -> Result<CreateResult, ArmError> {
        let parameters: serde_json::Map<String, Value> = params
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let body = json!({
            "properties": {
                "runbook": { "name": runbook },
                "parameters": parameters,
                "runOn": "",
            }
        });
        let url = self.job_url(job_name, &[]);
        match self
            .send_with(
                Method::PUT,
                url,
                Body::Json(&body),
                "application/json",
                Read::JSON,
                false,
            )
            .await
        {
            // The job exists whatever its answer says: an odd body must not hide that.
            Ok(answer) => Ok(CreateResult::Created(Job::from_json(
                &serde_json::from_slice(&answer.body).unwrap_or(Value::Null),
            ))),
            Err(e) if e.means_already_exists() => Ok(CreateResult::AlreadyExists),
            Err(e) => Err(e),
        }
    }

    pub async fn get_job(&self, job_name: &str) -> Result<Job, ArmError> {
        let answer = self
            .send(
                Method::GET,
                self.job_url(job_name, &[]),
                Body::None,
                "application/json",
                Read::JSON,
            )
            .await?;
        Ok(Job::from_json(&json_body(&answer)?))
    }

    /// The end of the job's Output stream as text: its last [`MAX_OUTPUT_TAIL`] bytes. The
    /// whole stream is read, but only that much is kept.
    pub async fn get_output(&self, job_name: &str) -> Result<String, ArmError> {
        let url = self.job_url(job_name, &["output"]);
        let read = Read::Tail(MAX_OUTPUT_TAIL, OUTPUT_TIMEOUT);
        let answer = self
            .send(Method::GET, url, Body::None, "text/plain", read)
            .await?;
        if answer.total > answer.body.len() as u64 {
            tracing::info!(
                job = job_name,
                bytes = answer.total,
                kept = answer.body.len(),
                "the job's output is long; only its end is kept"
            );
        }
        let tail = Tail {
            bytes: answer.body,
            total: answer.total,
            before: answer.before,
        };
        Ok(tail.text())
    }

    /// The job's stream records, of one type (`Error`, `Output`…) or all, following `nextLink`
    /// for at most a bounded number of pages.
    pub async fn list_streams(
        &self,
        job_name: &str,
        stream_type: Option<&str>,
    ) -> Result<Vec<StreamRecord>, ArmError> {
        let listed = self
            .list_pages(self.streams_url(job_name, stream_type), MAX_PAGES)
            .await?;
        if !listed.complete {
            tracing::warn!(
                job = job_name,
                pages = MAX_PAGES,
                "stopped reading stream records after the page limit"
            );
        }
        Ok(listed.items.iter().map(StreamRecord::from_json).collect())
    }

    /// The job's stream records of one type, read on from `from` (the last page an earlier
    /// call read, which is read again for what was added to it since) or from the first page,
    /// following `nextLink` for at most a bounded number of pages. Answers the records, the URL
    /// of the last page read (where the next call starts) and how many of the records are on
    /// that page (the last ones).
    pub async fn read_streams_on(
        &self,
        job_name: &str,
        stream_type: &str,
        from: Option<Url>,
    ) -> Result<StreamPages, ArmError> {
        let url = from.unwrap_or_else(|| self.streams_url(job_name, Some(stream_type)));
        let listed = self.list_pages(url, MAX_PAGES).await?;
        Ok(StreamPages {
            records: listed.items.iter().map(StreamRecord::from_json).collect(),
            last_page: listed.last_page,
            on_last_page: listed.on_last_page,
        })
    }

    /// The URL of the job's stream list, of one type or all.
    fn streams_url(&self, job_name: &str, stream_type: Option<&str>) -> Url {
        let mut url = self.job_url(job_name, &["streams"]);
        if let Some(kind) = stream_type {
            let filter = format!("properties/streamType eq '{}'", kind.replace('\'', "''"));
            url.query_pairs_mut().append_pair("$filter", &filter);
        }
        url
    }

    /// The `value` items of an ARM list at `url` and its `nextLink` pages, reading at most
    /// `max_pages` pages.
    pub(super) async fn list_pages(
        &self,
        mut url: Url,
        max_pages: usize,
    ) -> Result<Listed, ArmError> {
        let mut items = Vec::new();
        for _ in 0..max_pages {
            let mut page = json_body(
                &self
                    .send(
                        Method::GET,
                        url.clone(),
                        Body::None,
                        "application/json",
                        Read::JSON,
                    )
                    .await?,
            )?;
            let mut on_page = 0;
            if let Some(Value::Array(values)) = page.get_mut("value").map(Value::take) {
                on_page = values.len();
                items.extend(values);
            }
            match page
                .get("nextLink")
                .and_then(Value::as_str)
                .filter(|l| !l.is_empty())
            {
                None => {
                    return Ok(Listed {
                        items,
                        complete: true,
                        last_page: url,
                        on_last_page: on_page,
                    });
                }
                Some(link) => url = self.next_link(link)?,
            }
        }
        Ok(Listed {
            items,
            complete: false,
            last_page: url,
            on_last_page: 0,
        })
    }

    /// One stream record with its whole text.
    pub async fn get_stream(
        &self,
        job_name: &str,
        stream_id: &str,
    ) -> Result<StreamRecord, ArmError> {
        let url = self.job_url(job_name, &["streams", stream_id]);
        let answer = self
            .send(Method::GET, url, Body::None, "application/json", Read::JSON)
            .await?;
        Ok(StreamRecord::from_json(&json_body(&answer)?))
    }

    /// Asks Azure to stop the job; it goes through Stopping to Stopped.
    pub async fn stop_job(&self, job_name: &str) -> Result<(), ArmError> {
        let url = self.job_url(job_name, &["stop"]);
        self.send(
            Method::POST,
            url,
            Body::Empty,
            "application/json",
            Read::JSON,
        )
        .await?;
        Ok(())
    }

    fn job_url(&self, job_name: &str, tail: &[&str]) -> Url {
        let mut url = self.account_url.clone();
        // `new` made sure the URL is a base, so this always succeeds.
        if let Ok(mut path) = url.path_segments_mut() {
            path.push("jobs").push(job_name).extend(tail);
        }
        url.query_pairs_mut()
            .append_pair("api-version", API_VERSION);
        url
    }

    /// A `nextLink` is followed only on ARM's own origin: the request carries our token.
    pub(super) fn next_link(&self, link: &str) -> Result<Url, ArmError> {
        let url = Url::parse(link)
            .map_err(|_| ArmError::Unexpected("a nextLink that is not a URL".into()))?;
        if url.origin() != self.account_url.origin() {
            return Err(ArmError::Unexpected(format!(
                "a nextLink to another host ({})",
                url.host_str().unwrap_or("none")
            )));
        }
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::arm::DEFAULT_SCOPE;

    #[test]
    fn job_urls_sit_under_the_account() {
        let config = ArmConfig {
            endpoint: Url::parse("http://127.0.0.1:9/arm/").unwrap(),
            subscription_id: "s".into(),
            resource_group: "rg".into(),
            account: "a".into(),
            scope: DEFAULT_SCOPE.into(),
            reads_per_second: None,
        };
        #[derive(Debug)]
        struct NoToken;
        #[async_trait::async_trait]
        impl TokenCredential for NoToken {
            async fn get_token(
                &self,
                _: &[&str],
                _: Option<azure_core::credentials::TokenRequestOptions<'_>>,
            ) -> azure_core::Result<azure_core::credentials::AccessToken> {
                Err(azure_core::Error::with_message(
                    azure_core::error::ErrorKind::Credential,
                    "none",
                ))
            }
        }
        let client = ArmClient::new(&config, Arc::new(NoToken)).unwrap();
        assert_eq!(
            client.job_url("j 1", &["output"]).as_str(),
            "http://127.0.0.1:9/arm/subscriptions/s/resourceGroups/rg/providers/Microsoft.Automation/automationAccounts/a/jobs/j%201/output?api-version=2024-10-23"
        );
    }

    /// A token taken before a long wait for the read budget could expire on the way.
    #[tokio::test]
    async fn a_read_takes_its_token_after_its_turn_in_the_read_budget() {
        #[derive(Debug, Default)]
        struct Clocked(std::sync::Mutex<Vec<std::time::Instant>>);
        #[async_trait::async_trait]
        impl TokenCredential for Clocked {
            async fn get_token(
                &self,
                _: &[&str],
                _: Option<azure_core::credentials::TokenRequestOptions<'_>>,
            ) -> azure_core::Result<azure_core::credentials::AccessToken> {
                if let Ok(mut taken) = self.0.lock() {
                    taken.push(std::time::Instant::now());
                }
                Ok(azure_core::credentials::AccessToken::new(
                    "t",
                    time::OffsetDateTime::now_utc() + time::Duration::hours(1),
                ))
            }
        }
        // A port nothing listens on: every read fails at once, after its token.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let config = ArmConfig {
            endpoint: Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap(),
            subscription_id: "s".into(),
            resource_group: "rg".into(),
            account: "a".into(),
            scope: DEFAULT_SCOPE.into(),
            reads_per_second: None,
        };
        let credential = Arc::new(Clocked::default());
        let client = Arc::new(
            ArmClient::new(&config, credential.clone())
                .unwrap()
                .with_budget(Arc::new(ReadBudget::new(4.0)))
                .with_retry(RetryPolicy {
                    attempts: 1,
                    ..RetryPolicy::default()
                }),
        );
        // Four reads at once, then four more turns at 4 a second.
        let mut reads = tokio::task::JoinSet::new();
        for i in 0..8 {
            let client = client.clone();
            reads.spawn(async move { client.get_job(&format!("j{i}")).await });
        }
        while reads.join_next().await.is_some() {}
        let taken = credential.0.lock().unwrap().clone();
        assert_eq!(taken.len(), 8);
        let spread = taken[taken.len() - 1].duration_since(taken[0]);
        assert!(
            spread >= Duration::from_millis(700),
            "tokens taken {spread:?} apart: before the reads' turns"
        );
    }
}
