//! One ARM request end to end: the token, the HTTP call, reading the answer, and the retry
//! loop around it.

use super::client::ArmClient;
use super::error::ArmError;
use chatops_shared::backoff::retry_after;
use chatops_shared::body::{read_head, read_tail};
use chatops_shared::secret::redact_url_secrets;
use reqwest::header::{ACCEPT, HeaderMap};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::time::Duration;
use url::Url;

/// The longest wait for an Azure token in one ARM try.
const TOKEN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A 429 asking to wait longer than this is a limit worth telling the requester about.
const LONG_THROTTLE: Duration = Duration::from_secs(5);

/// ARM's header for the subscription's remaining read budget.
const REMAINING_READS: &str = "x-ms-ratelimit-remaining-subscription-reads";

/// The most of an error body read: ARM's are a few hundred bytes.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// The most of a JSON answer read; a longer one is refused as unexpected.
const MAX_JSON_BODY: usize = 4 * 1024 * 1024;

/// How much of a successful answer to read.
#[derive(Debug, Clone, Copy)]
pub(super) enum Read {
    /// All of it, up to this many bytes; a longer answer is an [`ArmError::Unexpected`].
    Whole(usize),
    /// To the end, keeping only this many last bytes, within this timeout (a job's output can
    /// be hundreds of megabytes).
    Tail(usize, Duration),
}

impl Read {
    /// A JSON answer.
    pub(super) const JSON: Read = Read::Whole(MAX_JSON_BODY);
}

/// A successful answer, read within its [`Read`] bound.
pub(super) struct Answer {
    headers: HeaderMap,
    pub(super) body: Vec<u8>,
    /// Bytes of the whole body (more than `body` holds when only the tail was kept).
    pub(super) total: u64,
    /// The byte before `body` when only the tail was kept ([`chatops_shared::body::Tail`]).
    pub(super) before: Option<u8>,
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
        read: Read,
    ) -> Result<Answer, ArmError> {
        self.send_with(method, url, body, accept, read, true).await
    }

    /// [`ArmClient::send`]; `retry_long_throttling: false` hands the caller a 429 that asks to
    /// wait longer than [`LONG_THROTTLE`] at once (a job start refused at one of Automation's
    /// limits is retried by the executor, which tells the requester the job waits); a short
    /// `Retry-After` (ARM's write throttle) is still waited out here.
    pub(super) async fn send_with(
        &self,
        method: Method,
        url: Url,
        body: Body<'_>,
        accept: &str,
        read: Read,
        retry_long_throttling: bool,
    ) -> Result<Answer, ArmError> {
        let mut retry = 0;
        loop {
            let error = match self.try_once(&method, &url, &body, accept, read).await {
                Ok(answer) => return Ok(answer),
                Err(error) => error,
            };
            let long_throttle = error.status() == Some(429)
                && error.retry_after().is_some_and(|wait| wait > LONG_THROTTLE);
            if !error.is_transient()
                || retry + 1 >= self.retry.attempts
                || (long_throttle && !retry_long_throttling)
            {
                return Err(error);
            }
            let wait = self.retry.wait(retry, error.retry_after());
            tracing::warn!(
                %method,
                path = url.path(),
                %error,
                attempt = retry + 1,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "Azure Resource Manager request failed; retrying"
            );
            crate::metrics::retry("arm");
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
        read: Read,
    ) -> Result<Answer, ArmError> {
        // The read's turn first: with many jobs followed it can be minutes away, and a token
        // taken before the wait could expire on the way (the credential hands out a cached
        // one until its last 5 minutes).
        let is_read = method == Method::GET;
        if is_read && let Some(budget) = &self.budget {
            budget.acquire().await;
        }
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
        if let Read::Tail(_, timeout) = read {
            request = request.timeout(timeout);
        }
        let response = request
            .send()
            .await
            .inspect_err(|_| crate::metrics::arm_answer(None))
            .map_err(|e| ArmError::Network(describe(e)))?;
        let status = response.status();
        crate::metrics::arm_answer(Some(status.as_u16()));
        let headers = response.headers().clone();
        log_budget(method, status, &headers);
        let retry_after = matches!(status.as_u16(), 429 | 503)
            .then(|| retry_after(&headers))
            .flatten();
        if is_read && let Some(budget) = &self.budget {
            budget.observe(status.as_u16(), remaining_reads(&headers), retry_after);
        }
        let network = |e: reqwest::Error| ArmError::Network(describe(e));
        if !status.is_success() {
            let head = read_head(response, MAX_ERROR_BODY).await.map_err(network)?;
            return Err(ArmError::from_answer(status, &head.bytes).with_retry_after(retry_after));
        }
        match read {
            Read::Whole(max) => {
                let head = read_head(response, max).await.map_err(network)?;
                if head.cut {
                    return Err(ArmError::Unexpected(format!(
                        "an answer larger than {} KiB",
                        max / 1024
                    )));
                }
                let total = head.bytes.len() as u64;
                Ok(Answer {
                    headers,
                    body: head.bytes,
                    total,
                    before: None,
                })
            }
            Read::Tail(max, _) => {
                let tail = read_tail(response, max).await.map_err(network)?;
                Ok(Answer {
                    headers,
                    body: tail.bytes,
                    total: tail.total,
                    before: tail.before,
                })
            }
        }
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
        remaining_reads = header(REMAINING_READS),
        remaining_writes = header("x-ms-ratelimit-remaining-subscription-writes"),
        "Azure Resource Manager answered"
    );
}

/// `x-ms-ratelimit-remaining-subscription-reads`: what is left of the subscription's read bucket.
fn remaining_reads(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(REMAINING_READS)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A reqwest error with its causes, without the URL (it names the subscription and the
/// account).
pub(super) fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = if error.is_timeout() {
        "the request timed out".to_owned()
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else {
        error.to_string()
    };
    let mut source = std::error::Error::source(&error);
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

    #[tokio::test]
    async fn a_network_failure_is_described_without_its_url() {
        // A server that takes the connection and closes it without an answer.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                drop(socket);
            }
        });
        let url = format!("http://{addr}/subscriptions/0000-sub/resourceGroups/rg-secret/jobs");
        let error = reqwest::get(&url).await.unwrap_err();
        assert!(error.to_string().contains("rg-secret"), "{error}");
        let text = describe(error);
        assert!(
            !text.contains("rg-secret") && !text.contains("subscriptions"),
            "{text}"
        );
        assert!(!text.is_empty());
    }
}
