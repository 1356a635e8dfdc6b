//! One ARM request end to end: the token, the HTTP call, reading the answer, and the retry
//! loop around it.

use super::client::ArmClient;
use super::error::ArmError;
use chatops_shared::secret::redact_url_secrets;
use reqwest::header::{ACCEPT, HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::time::Duration;
use url::Url;

/// The longest wait for an Azure token in one ARM try.
const TOKEN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A successful answer, read whole.
pub(super) struct Answer {
    headers: HeaderMap,
    pub(super) body: Vec<u8>,
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

pub(super) enum Body<'a> {
    None,
    Json(&'a Value),
    /// An empty body with `Content-Length: 0`, which ARM wants on a POST.
    Empty,
}

impl ArmClient {
    /// Sends a request, retrying transient failures per the [`RetryPolicy`](super::RetryPolicy).
    pub(super) async fn send(
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
        // The credential has retries of its own; bound the whole wait so one try of ours
        // cannot hang on the identity endpoint.
        let token = tokio::time::timeout(
            TOKEN_TIMEOUT,
            self.credential.get_token(&[self.scope.as_str()], None),
        )
        .await
        .map_err(|_| ArmError::Token(format!("no token within {}s", TOKEN_TIMEOUT.as_secs())))?
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

pub(super) fn json_body(answer: &Answer) -> Result<Value, ArmError> {
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
pub(super) fn describe(error: &reqwest::Error) -> String {
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
