//! The Azure Resource Manager client for Automation jobs: the only place that builds ARM URLs
//! and reads ARM answers (see `shared/reference/azure-automation.md` for the calls).
//!
//! Transient failures (network, timeouts, 5xx, 429, token errors) are retried here, a bounded
//! number of times with exponential backoff and jitter, honouring `Retry-After`. Callers see a
//! typed [`ArmError`] that keeps ARM's error code and message and never a token or a raw body.
//!
//! Retrying a job's PUT is safe: the job name is chosen by the caller, so a repeated PUT whose
//! first answer was lost is refused as "already exists" and reported as
//! [`CreateResult::AlreadyExists`].

use azure_core::credentials::TokenCredential;
use chatops_shared::config::{ConfigError, EnvSource, optional, url as url_var};
use chatops_shared::secret::redact_url_secrets;
use rand::Rng;
use reqwest::header::{ACCEPT, HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use time::format_description::well_known::{Iso8601, Rfc3339};
use time::{OffsetDateTime, PrimitiveDateTime};
use url::Url;

/// The Automation api-version this client speaks.
pub const API_VERSION: &str = "2024-10-23";
/// ARM in the public cloud.
pub const DEFAULT_ENDPOINT: &str = "https://management.azure.com";
/// The token scope for ARM in the public cloud.
pub const DEFAULT_SCOPE: &str = "https://management.azure.com/.default";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Most pages of stream records read for one job.
const MAX_PAGES: usize = 20;
/// Longest error message kept from an ARM answer.
const MAX_MESSAGE_CHARS: usize = 600;

/// Where the Automation account is and how to get a token for it.
///
/// | variable | meaning | default |
/// |---|---|---|
/// | `AZURE_SUBSCRIPTION_ID` | subscription of the Automation account | required* |
/// | `AUTOMATION_RESOURCE_GROUP` | its resource group | required* |
/// | `AUTOMATION_ACCOUNT` | the Automation account | required* |
/// | `CHATOPS_ARM_ENDPOINT` | ARM base URL (other clouds differ) | `https://management.azure.com` |
/// | `CHATOPS_ARM_SCOPE` | token scope for ARM | `https://management.azure.com/.default` |
///
/// \* Azure Automation is off when none of the three is set; setting only some is an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArmConfig {
    pub endpoint: Url,
    pub subscription_id: String,
    pub resource_group: String,
    pub account: String,
    pub scope: String,
}

impl ArmConfig {
    /// Reads the variables in the table above; `Ok(None)` when Automation is not configured.
    pub fn from_env(env: &dyn EnvSource) -> Result<Option<Self>, ConfigError> {
        const VARS: [&str; 3] = [
            "AZURE_SUBSCRIPTION_ID",
            "AUTOMATION_RESOURCE_GROUP",
            "AUTOMATION_ACCOUNT",
        ];
        let values = VARS.map(|v| optional(env, v));
        if values.iter().all(Option::is_none) {
            return Ok(None);
        }
        let missing: Vec<&str> = VARS
            .iter()
            .zip(&values)
            .filter(|(_, v)| v.is_none())
            .map(|(var, _)| *var)
            .collect();
        if !missing.is_empty() {
            return Err(ConfigError::new(
                &missing.join(", "),
                format!("Azure Automation needs all of {}", VARS.join(", ")),
            ));
        }
        let [subscription_id, resource_group, account] = values.map(Option::unwrap_or_default);
        let endpoint = match url_var(env, "CHATOPS_ARM_ENDPOINT")? {
            Some(u) => u,
            None => Url::parse(DEFAULT_ENDPOINT)
                .map_err(|e| ConfigError::new("CHATOPS_ARM_ENDPOINT", e.to_string()))?,
        };
        let scope = optional(env, "CHATOPS_ARM_SCOPE").unwrap_or_else(|| DEFAULT_SCOPE.to_owned());
        Ok(Some(ArmConfig {
            endpoint,
            subscription_id,
            resource_group,
            account,
            scope,
        }))
    }
}

/// How the client retries transient failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first one included.
    pub attempts: u32,
    /// Wait before the first retry; doubles with each retry, with jitter.
    pub initial_backoff: Duration,
    /// Longest backoff between two tries.
    pub max_backoff: Duration,
    /// Longest `Retry-After` honoured (ARM asks for seconds; a bigger ask is capped).
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0 for the first), with "equal jitter": somewhere
    /// between half and all of the exponential backoff, so runners do not retry in step.
    fn backoff(&self, retry: u32) -> Duration {
        let full = self
            .initial_backoff
            .saturating_mul(2u32.saturating_pow(retry))
            .min(self.max_backoff);
        let millis = u64::try_from(full.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(millis / 2..=millis))
    }
}

/// What ARM said, in the user's terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArmError {
    /// ARM answered with an error status. `code` and `message` come from its error body.
    #[error("{code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// No answer: connection refused, reset, timed out.
    #[error("could not reach Azure Resource Manager: {0}")]
    Network(String),
    #[error("could not get an Azure token: {0}")]
    Token(String),
    /// A success answer that is not what the API promises.
    #[error("Azure Resource Manager sent an answer this runner does not understand: {0}")]
    Unexpected(String),
    /// The client could not be set up.
    #[error("could not set up the Azure Resource Manager client: {0}")]
    Setup(String),
}

impl ArmError {
    /// Worth trying again later: network, timeouts, token errors, 5xx and 429.
    pub fn is_transient(&self) -> bool {
        match self {
            ArmError::Api { status, .. } => *status == 429 || *status == 408 || *status >= 500,
            ArmError::Network(_) | ArmError::Token(_) => true,
            ArmError::Unexpected(_) | ArmError::Setup(_) => false,
        }
    }

    /// The HTTP status of an [`ArmError::Api`].
    pub fn status(&self) -> Option<u16> {
        match self {
            ArmError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// A PUT for a job name that exists is refused: HTTP 409, or an error saying so.
    fn means_already_exists(&self) -> bool {
        match self {
            ArmError::Api {
                status,
                code,
                message,
            } => {
                *status == 409
                    || code.eq_ignore_ascii_case("Conflict")
                    || code.eq_ignore_ascii_case("JobAlreadyExists")
                    || message.to_ascii_lowercase().contains("already exists")
            }
            _ => false,
        }
    }

    /// Reads either error body shape: ARM's `{"error":{"code","message"}}` or Automation's flat
    /// `{"code","message"}` (whose message is sometimes itself a JSON `{"Message":…}`).
    fn from_answer(status: StatusCode, body: &[u8]) -> Self {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let detail = parsed
            .as_ref()
            .map(|v| v.get("error").filter(|e| e.is_object()).unwrap_or(v));
        let field = |names: [&str; 2]| {
            detail.and_then(|d| {
                names
                    .iter()
                    .find_map(|n| d.get(*n).and_then(Value::as_str))
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
            })
        };
        let code = field(["code", "Code"]).unwrap_or_else(|| {
            status.canonical_reason().map_or_else(
                || format!("HTTP{}", status.as_u16()),
                |r| r.replace(' ', ""),
            )
        });
        let message = field(["message", "Message"])
            .map(|m| unwrap_nested_message(&m))
            .unwrap_or_else(|| format!("HTTP {} without error details", status.as_u16()));
        ArmError::Api {
            status: status.as_u16(),
            code,
            message: shorten(&redact_url_secrets(&message)),
        }
    }
}

/// Automation sometimes wraps its message as a JSON string: `"{\"Message\":\"…\"}"`.
fn unwrap_nested_message(message: &str) -> String {
    serde_json::from_str::<Value>(message)
        .ok()
        .and_then(|v| {
            ["Message", "message"]
                .iter()
                .find_map(|k| v.get(*k).and_then(Value::as_str).map(str::to_owned))
        })
        .unwrap_or_else(|| message.to_owned())
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= MAX_MESSAGE_CHARS {
        text.to_owned()
    } else {
        let head: String = text.chars().take(MAX_MESSAGE_CHARS).collect();
        format!("{head}…")
    }
}

/// A job's status as Automation reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobStatus {
    New,
    Activating,
    Running,
    Completed,
    Failed,
    Stopped,
    Blocked,
    Suspended,
    Disconnected,
    Suspending,
    Stopping,
    Resuming,
    Removing,
    /// A status this client does not know (or none at all).
    Other(String),
}

impl JobStatus {
    pub fn parse(s: &str) -> Self {
        use JobStatus::*;
        let known = [
            New,
            Activating,
            Running,
            Completed,
            Failed,
            Stopped,
            Blocked,
            Suspended,
            Disconnected,
            Suspending,
            Stopping,
            Resuming,
            Removing,
        ];
        known
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s.trim()))
            .unwrap_or_else(|| Other(s.trim().to_owned()))
    }

    pub fn as_str(&self) -> &str {
        match self {
            JobStatus::New => "New",
            JobStatus::Activating => "Activating",
            JobStatus::Running => "Running",
            JobStatus::Completed => "Completed",
            JobStatus::Failed => "Failed",
            JobStatus::Stopped => "Stopped",
            JobStatus::Blocked => "Blocked",
            JobStatus::Suspended => "Suspended",
            JobStatus::Disconnected => "Disconnected",
            JobStatus::Suspending => "Suspending",
            JobStatus::Stopping => "Stopping",
            JobStatus::Resuming => "Resuming",
            JobStatus::Removing => "Removing",
            JobStatus::Other(s) => s,
        }
    }

    /// Ends the job for this runner: Completed, Failed, Stopped, and Suspended (which waits for a
    /// resume that nobody sends).
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Stopped | JobStatus::Suspended
        )
    }

    /// The job has left the queue of jobs waiting for a sandbox.
    pub fn has_started(&self) -> bool {
        !matches!(
            self,
            JobStatus::New | JobStatus::Activating | JobStatus::Other(_)
        )
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An Automation job, as far as the runner cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The job name (the chat request's job id).
    pub name: String,
    pub runbook: Option<String>,
    pub status: JobStatus,
    pub status_details: Option<String>,
    pub creation_time: Option<OffsetDateTime>,
    pub start_time: Option<OffsetDateTime>,
    pub end_time: Option<OffsetDateTime>,
    /// Why the job failed or was suspended, as Automation puts it.
    pub exception: Option<String>,
}

impl Job {
    /// Reads a job resource; unknown fields are ignored, odd values read as absent.
    fn from_json(name: &str, value: &Value) -> Self {
        let props = value.get("properties").unwrap_or(&Value::Null);
        let text = |key: &str| {
            props
                .get(key)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        Job {
            name: value
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or(name)
                .to_owned(),
            runbook: props
                .get("runbook")
                .and_then(|r| r.get("name"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            status: JobStatus::parse(&text("status").unwrap_or_default()),
            status_details: text("statusDetails"),
            creation_time: parse_time(props.get("creationTime")),
            start_time: parse_time(props.get("startTime")),
            end_time: parse_time(props.get("endTime")),
            exception: text("exception"),
        }
    }
}

/// One record of a job's streams (Output, Error, Warning…).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRecord {
    /// `jobStreamId`, for [`ArmClient::get_stream`].
    pub id: String,
    pub time: Option<OffsetDateTime>,
    pub stream_type: String,
    /// A shortened text; lists carry only this.
    pub summary: Option<String>,
    /// The whole text; only [`ArmClient::get_stream`] fills it.
    pub stream_text: Option<String>,
    /// The record's structured value (for errors: the exception and its details).
    pub value: Option<Value>,
}

impl StreamRecord {
    fn from_json(value: &Value) -> Self {
        let props = value.get("properties").unwrap_or(&Value::Null);
        let text = |key: &str| {
            props
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
                .map(str::to_owned)
        };
        let id = text("jobStreamId")
            .or_else(|| {
                value
                    .get("id")
                    .and_then(Value::as_str)
                    .and_then(|id| id.rsplit('/').next())
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        StreamRecord {
            id,
            time: parse_time(props.get("time")),
            stream_type: text("streamType").unwrap_or_default(),
            summary: text("summary"),
            stream_text: text("streamText"),
            value: props.get("value").filter(|v| !v.is_null()).cloned(),
        }
    }
}

/// Reads an RFC 3339 time, or an ISO 8601 one with or without offset (UTC assumed); .NET's
/// `DateTime.MinValue` (year 1) and anything else unreadable count as absent.
fn parse_time(value: Option<&Value>) -> Option<OffsetDateTime> {
    let s = value?.as_str()?.trim();
    let time = OffsetDateTime::parse(s, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(s, &Iso8601::DEFAULT))
        .or_else(|_| PrimitiveDateTime::parse(s, &Iso8601::DEFAULT).map(|t| t.assume_utc()))
        .ok()?;
    (time.year() > 1).then_some(time)
}

/// The answer to a job PUT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateResult {
    Created(Job),
    /// A job with this name exists: it was started before (by this or another runner).
    AlreadyExists,
}

/// A successful answer, read whole.
struct Answer {
    headers: HeaderMap,
    body: Vec<u8>,
}

/// A failed try, with how long ARM asked us to wait.
struct Failure {
    error: ArmError,
    retry_after: Option<Duration>,
}

impl From<ArmError> for Failure {
    fn from(error: ArmError) -> Self {
        Failure {
            error,
            retry_after: None,
        }
    }
}

enum Body<'a> {
    None,
    Json(&'a Value),
    /// An empty body with `Content-Length: 0`, which ARM wants on a POST.
    Empty,
}

/// A client for the jobs of one Automation account.
#[derive(Debug, Clone)]
pub struct ArmClient {
    http: reqwest::Client,
    /// `{endpoint}/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Automation/automationAccounts/{account}`.
    account_url: Url,
    scope: String,
    credential: Arc<dyn TokenCredential>,
    retry: RetryPolicy,
}

impl ArmClient {
    pub fn new(config: &ArmConfig, credential: Arc<dyn TokenCredential>) -> Result<Self, ArmError> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("chatops-runner/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ArmError::Setup(describe(&e)))?;
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
        })
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
            .send(Method::PUT, url, Body::Json(&body), "application/json")
            .await
        {
            // The job exists whatever its answer says: an odd body must not hide that.
            Ok(answer) => Ok(CreateResult::Created(Job::from_json(
                job_name,
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
            )
            .await?;
        Ok(Job::from_json(job_name, &json_body(&answer)?))
    }

    /// The job's whole Output stream as text.
    pub async fn get_output(&self, job_name: &str) -> Result<String, ArmError> {
        let url = self.job_url(job_name, &["output"]);
        let answer = self
            .send(Method::GET, url, Body::None, "text/plain")
            .await?;
        Ok(String::from_utf8_lossy(&answer.body).into_owned())
    }

    /// The job's stream records, of one type (`Error`, `Output`…) or all, following `nextLink`
    /// for at most a bounded number of pages.
    pub async fn list_streams(
        &self,
        job_name: &str,
        stream_type: Option<&str>,
    ) -> Result<Vec<StreamRecord>, ArmError> {
        let mut url = self.job_url(job_name, &["streams"]);
        if let Some(kind) = stream_type {
            let filter = format!("properties/streamType eq '{}'", kind.replace('\'', "''"));
            url.query_pairs_mut().append_pair("$filter", &filter);
        }
        let mut records = Vec::new();
        for _ in 0..MAX_PAGES {
            let page = json_body(
                &self
                    .send(Method::GET, url, Body::None, "application/json")
                    .await?,
            )?;
            if let Some(items) = page.get("value").and_then(Value::as_array) {
                records.extend(items.iter().map(StreamRecord::from_json));
            }
            match page
                .get("nextLink")
                .and_then(Value::as_str)
                .filter(|l| !l.is_empty())
            {
                None => return Ok(records),
                Some(link) => url = self.next_link(link)?,
            }
        }
        tracing::warn!(
            job = job_name,
            pages = MAX_PAGES,
            "stopped reading stream records after the page limit"
        );
        Ok(records)
    }

    /// One stream record with its whole text.
    pub async fn get_stream(
        &self,
        job_name: &str,
        stream_id: &str,
    ) -> Result<StreamRecord, ArmError> {
        let url = self.job_url(job_name, &["streams", stream_id]);
        let answer = self
            .send(Method::GET, url, Body::None, "application/json")
            .await?;
        Ok(StreamRecord::from_json(&json_body(&answer)?))
    }

    /// Asks Azure to stop the job; it goes through Stopping to Stopped.
    pub async fn stop_job(&self, job_name: &str) -> Result<(), ArmError> {
        let url = self.job_url(job_name, &["stop"]);
        self.send(Method::POST, url, Body::Empty, "application/json")
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
    fn next_link(&self, link: &str) -> Result<Url, ArmError> {
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

    /// Sends a request, retrying transient failures per the [`RetryPolicy`].
    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Body<'_>,
        accept: &str,
    ) -> Result<Answer, ArmError> {
        let mut retry = 0;
        loop {
            let failure = match self.try_once(&method, &url, &body, accept).await {
                Ok(answer) => return Ok(answer),
                Err(failure) => failure,
            };
            let error = failure.error;
            if !error.is_transient() || retry + 1 >= self.retry.attempts {
                return Err(error);
            }
            let wait = failure
                .retry_after
                .map(|d| d.min(self.retry.max_retry_after))
                .unwrap_or_else(|| self.retry.backoff(retry));
            tracing::warn!(
                %method,
                path = url.path(),
                %error,
                attempt = retry + 1,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "Azure Resource Manager request failed; retrying"
            );
            tokio::time::sleep(wait).await;
            retry += 1;
        }
    }

    async fn try_once(
        &self,
        method: &Method,
        url: &Url,
        body: &Body<'_>,
        accept: &str,
    ) -> Result<Answer, Failure> {
        let token = self
            .credential
            .get_token(&[self.scope.as_str()], None)
            .await
            .map_err(|e| ArmError::Token(redact_url_secrets(&e.to_string())))?;
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .bearer_auth(token.token.secret())
            .header(ACCEPT, accept);
        request = match body {
            Body::None => request,
            Body::Json(value) => request.json(value),
            Body::Empty => request.body(Vec::new()),
        };
        let response = request
            .send()
            .await
            .map_err(|e| ArmError::Network(describe(&e)))?;
        let status = response.status();
        let headers = response.headers().clone();
        log_budget(method, status, &headers);
        let body = response
            .bytes()
            .await
            .map_err(|e| ArmError::Network(describe(&e)))?
            .to_vec();
        if status.is_success() {
            return Ok(Answer { headers, body });
        }
        let retry_after = matches!(status.as_u16(), 429 | 503)
            .then(|| {
                headers
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs)
            })
            .flatten();
        Err(Failure {
            error: ArmError::from_answer(status, &body),
            retry_after,
        })
    }
}

fn json_body(answer: &Answer) -> Result<Value, ArmError> {
    let is_json = answer
        .headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|ct| ct.contains("json"));
    serde_json::from_slice(&answer.body)
        .ok()
        .filter(|v: &Value| is_json && v.is_object())
        .ok_or_else(|| ArmError::Unexpected("a body that is not a JSON object".into()))
}

/// ARM's remaining throttling budget, for tuning poll intervals.
fn log_budget(method: &Method, status: StatusCode, headers: &HeaderMap) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    tracing::debug!(
        %method,
        status = status.as_u16(),
        remaining_reads = header("x-ms-ratelimit-remaining-subscription-reads"),
        remaining_writes = header("x-ms-ratelimit-remaining-subscription-writes"),
        "Azure Resource Manager answered"
    );
}

/// A reqwest error with its causes, without the URL.
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "the request timed out".to_owned()
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else {
        error.to_string()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    redact_url_secrets(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn reads_both_error_shapes() {
        let envelope =
            br#"{"error":{"code":"AuthorizationFailed","message":"no access","details":[]}}"#;
        assert_eq!(
            ArmError::from_answer(StatusCode::FORBIDDEN, envelope),
            ArmError::Api {
                status: 403,
                code: "AuthorizationFailed".into(),
                message: "no access".into()
            }
        );
        let flat =
            br#"{"code":"NotFound","message":"{\"Message\":\"The runbook was not found.\"}"}"#;
        let e = ArmError::from_answer(StatusCode::NOT_FOUND, flat);
        assert_eq!(e.to_string(), "NotFound: The runbook was not found.");
        assert!(!e.is_transient());
        let html = ArmError::from_answer(StatusCode::BAD_GATEWAY, b"<html>gateway</html>");
        assert_eq!(
            html.to_string(),
            "BadGateway: HTTP 502 without error details"
        );
        assert!(html.is_transient());
    }

    #[test]
    fn recognises_an_existing_job() {
        let conflict = ArmError::from_answer(StatusCode::CONFLICT, b"{}");
        assert!(conflict.means_already_exists());
        let bad = br#"{"code":"BadRequest","message":"Job with specified id already exists."}"#;
        assert!(ArmError::from_answer(StatusCode::BAD_REQUEST, bad).means_already_exists());
        assert!(!ArmError::from_answer(StatusCode::BAD_REQUEST, b"{}").means_already_exists());
    }

    #[test]
    fn reads_jobs_leniently() {
        let v = json!({
            "name": "j1",
            "properties": {
                "runbook": {"name": "Hello"},
                "status": "running",
                "creationTime": "2024-05-01T10:00:00.1234567+00:00",
                "startTime": "2024-05-01T10:00:05",
                "endTime": "0001-01-01T00:00:00+00:00",
                "exception": "",
                "somethingNew": 42
            }
        });
        let job = Job::from_json("x", &v);
        assert_eq!(job.status, JobStatus::Running);
        assert_eq!(job.runbook.as_deref(), Some("Hello"));
        assert!(job.creation_time.is_some() && job.start_time.is_some());
        assert_eq!(job.end_time, None);
        assert_eq!(job.exception, None);
        assert_eq!(JobStatus::parse("Weird"), JobStatus::Other("Weird".into()));
    }

    #[test]
    fn config_is_off_complete_or_an_error() {
        let none: HashMap<&str, &str> = HashMap::new();
        assert_eq!(ArmConfig::from_env(&none), Ok(None));
        let some = HashMap::from([("AUTOMATION_ACCOUNT", "a")]);
        let e = ArmConfig::from_env(&some).unwrap_err();
        assert_eq!(e.var, "AZURE_SUBSCRIPTION_ID, AUTOMATION_RESOURCE_GROUP");
        let all = HashMap::from([
            ("AZURE_SUBSCRIPTION_ID", "s"),
            ("AUTOMATION_RESOURCE_GROUP", "rg"),
            ("AUTOMATION_ACCOUNT", "a"),
            ("CHATOPS_ARM_ENDPOINT", "http://127.0.0.1:9/arm/"),
        ]);
        let config = ArmConfig::from_env(&all).unwrap().unwrap();
        assert_eq!(config.scope, DEFAULT_SCOPE);
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

    #[test]
    fn backoff_grows_with_jitter_and_a_cap() {
        let policy = RetryPolicy::default();
        for retry in 0..8 {
            let full = Duration::from_millis(500 * 2u64.pow(retry)).min(policy.max_backoff);
            let wait = policy.backoff(retry);
            assert!(wait >= full / 2 && wait <= full, "{retry}: {wait:?}");
        }
    }
}
