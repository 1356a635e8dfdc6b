//! The one Slack Web API client (bot token): the runner's job cards and threads, the ingress's
//! modals, and the policy's user-group lookups all call Slack through [`SlackApi`].
//!
//! What it handles in one place (see `/work/shared/reference/slack.md`):
//! - the token (`Authorization: Bearer`, never logged, never in an error) and the base URL
//!   (`SLACK_API_BASE_URL`, so tests and proxies can point elsewhere);
//! - Slack's answers: HTTP 200 with `{"ok": false, "error": "…"}` becomes
//!   [`SlackApiError::Slack`] with the code; a 429 is waited out for its `Retry-After`, and until
//!   then every call of that method waits with it (Slack's limits are per method and workspace);
//!   a 5xx or a lost connection is retried with backoff; all of it inside the caller's deadline;
//! - pacing: [`SlackApi::pace`] spaces calls that share a key (one channel's posts, one
//!   workspace's updates) so that bursts do not become 429 storms.
//!
//! Written over `reqwest` rather than a Slack crate's client: a call is one JSON POST, and the
//! crates that offer a client (slack-morphism) bring a second HTTP stack beside reqwest.
//!
//! - `error`: what a call can end in; `pace`: spacing calls per key; `chat`, `views`,
//!   `usergroups`: the typed methods this product calls.

mod chat;
mod error;
mod pace;
mod usergroups;
mod views;

pub use chat::{POST_MESSAGE, Posted, UPDATE_MESSAGE};
pub use error::SlackApiError;

use crate::backoff::{self, Backoff};
use crate::config::{self, ConfigError, EnvSource};
use crate::secret::Secret;
use crate::telemetry::metrics;
use pace::Pacer;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The bot token; without it there is no Web API client and Slack is reached through
/// `response_url`s and the webhook only.
pub const TOKEN_VAR: &str = "SLACK_BOT_TOKEN";
/// Where the Web API is.
pub const BASE_URL_VAR: &str = "SLACK_API_BASE_URL";

/// Where the Web API is when `SLACK_API_BASE_URL` is not set.
pub const DEFAULT_BASE_URL: &str = "https://slack.com/api";

/// Waits between retries of a 5xx or a lost connection.
/// What one answer came to, short of an error that asking again would not change.
enum Read {
    /// `ok: true`.
    Answer(Value),
    /// A 429 whose `Retry-After` the pacer holds the method for: call again (after it).
    WaitedOut,
    /// A 5xx: call again after [`RETRY`]'s growing wait.
    ServerError(u16),
}

const RETRY: Backoff = Backoff {
    first: Duration::from_millis(200),
    max: Duration::from_secs(5),
    jitter: true,
};

/// The largest answer read (a user group of 100,000 members is about 1.3 MB).
const MAX_ANSWER: usize = 4 << 20;

/// The bot-token client. Cheap to clone: clones share the connection pool, the pacing and the
/// rate-limit waits.
#[derive(Clone, Debug)]
pub struct SlackApi {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    base_url: String,
    token: Secret,
    pacer: Pacer,
}

/// A call's place in the pacing ([`SlackApi::pace`]): its key (`post:<channel>`,
/// `update:<team>`) and the interval between calls under it.
#[derive(Debug, Clone, Copy)]
pub struct Pace<'a> {
    pub key: &'a str,
    pub interval: Duration,
}

/// How a method takes its arguments: write methods take JSON, some read methods only a form.
enum Body<'a> {
    Json(&'a Value),
    Form(&'a [(&'a str, &'a str)]),
}

/// The client configured by `SLACK_BOT_TOKEN` and `SLACK_API_BASE_URL`, or `None` without a
/// token.
pub fn from_env(env: &dyn EnvSource) -> Result<Option<SlackApi>, ConfigError> {
    let Some(token) = config::optional(env, TOKEN_VAR) else {
        return Ok(None);
    };
    if !token.starts_with("xoxb-") {
        return Err(ConfigError::new(
            TOKEN_VAR,
            "must be a bot token (it starts with xoxb-)",
        ));
    }
    let base = config::optional(env, BASE_URL_VAR).unwrap_or_else(|| DEFAULT_BASE_URL.into());
    let parsed = url::Url::parse(&base)
        .map_err(|_| ConfigError::new(BASE_URL_VAR, "must be an http(s) URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ConfigError::new(BASE_URL_VAR, "must be an http(s) URL"));
    }
    SlackApi::new(Secret::new(token), &base)
        .map(Some)
        .map_err(|e| ConfigError::new(TOKEN_VAR, e.to_string()))
}

impl SlackApi {
    /// A client for `base_url` (e.g. [`DEFAULT_BASE_URL`]) with the bot token. Fails only when
    /// the HTTP client cannot be built.
    pub fn new(token: Secret, base_url: &str) -> Result<Self, SlackApiError> {
        let http = crate::tls::http_client()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            // A redirect would take the token somewhere Slack did not say.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("chatops/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SlackApiError::Client(e.without_url().to_string()))?;
        Ok(SlackApi {
            inner: Arc::new(Inner {
                http,
                base_url: base_url.trim_end_matches('/').to_string(),
                token,
                pacer: Pacer::default(),
            }),
        })
    }

    /// Waits until a call of `method` under `key` may go: `interval` after the previous call
    /// under `key` got its turn (concurrent callers queue), and after a 429's hold on `method`
    /// when it ends before `deadline`. Call Slack right after; [`SlackApi::post_message`] and
    /// [`SlackApi::update_message`] do it themselves given a [`Pace`], for each try. Callers
    /// choose the keys: `post:<channel>`, `update:<team>`. A turn that would come after
    /// `deadline` is not waited for: the call is not to be made ([`SlackApiError::Deadline`]).
    pub async fn pace(
        &self,
        key: &str,
        interval: Duration,
        method: &str,
        deadline: Instant,
    ) -> Result<(), SlackApiError> {
        if self
            .inner
            .pacer
            .wait_turn(key, interval, method, deadline)
            .await
        {
            Ok(())
        } else {
            Err(SlackApiError::deadline(
                method,
                "its turn in the pacing would come after the deadline",
            ))
        }
    }

    /// Calls `method` with a JSON body and returns Slack's answer (`ok: true`).
    pub async fn call(
        &self,
        method: &str,
        body: &Value,
        deadline: Instant,
    ) -> Result<Value, SlackApiError> {
        self.send(method, Body::Json(body), None, deadline).await
    }

    /// Calls `method` with form arguments (methods that do not read JSON bodies, such as
    /// `usergroups.users.list`).
    pub async fn call_form(
        &self,
        method: &str,
        args: &[(&str, &str)],
        deadline: Instant,
    ) -> Result<Value, SlackApiError> {
        self.send(method, Body::Form(args), None, deadline).await
    }

    /// Calls `method`, each try in its turn of `pace` when given, and after a 429's hold on
    /// `method` (rate-limited at once when the hold outlasts `deadline`).
    async fn send(
        &self,
        method: &str,
        body: Body<'_>,
        pace: Option<Pace<'_>>,
        deadline: Instant,
    ) -> Result<Value, SlackApiError> {
        let url = format!("{}/{method}", self.inner.base_url);
        let mut retry = 0u32;
        loop {
            if let Some(pace) = &pace {
                self.pace(pace.key, pace.interval, method, deadline).await?;
            }
            // A hold past the deadline: rate-limited, without asking Slack again.
            self.wait_out_rate_limit(method, deadline).await?;
            let request = self
                .inner
                .http
                .post(&url)
                .bearer_auth(self.inner.token.expose());
            let request = match &body {
                Body::Json(v) => request.json(v),
                Body::Form(args) => request.form(args),
            };
            let left = deadline.saturating_duration_since(Instant::now());
            let failure = match tokio::time::timeout(left, request.send()).await {
                Err(_) => return Err(SlackApiError::deadline(method, "no answer")),
                Ok(Err(e)) => {
                    metrics::slack_answer("web", None);
                    e.without_url().to_string()
                }
                Ok(Ok(response)) => match self.read(method, response, deadline).await? {
                    Read::Answer(answer) => return Ok(answer),
                    Read::WaitedOut => {
                        metrics::retry("slack");
                        continue;
                    }
                    Read::ServerError(status) => format!("HTTP {status}"),
                },
            };
            // A transport failure or a 5xx: wait and try again while the deadline allows.
            let wait = RETRY.wait(retry);
            retry += 1;
            if Instant::now() + wait >= deadline {
                return Err(SlackApiError::deadline(method, &failure));
            }
            tracing::debug!(method, retry, reason = %failure, "Slack call failed; retrying");
            metrics::retry("slack");
            tokio::time::sleep(wait).await;
        }
    }

    /// Reads one answer: [`Read`] for `ok: true` or to call again, `Err` for an answer that
    /// will not change by asking again.
    async fn read(
        &self,
        method: &str,
        response: reqwest::Response,
        deadline: Instant,
    ) -> Result<Read, SlackApiError> {
        let status = response.status();
        metrics::slack_answer("web", Some(status.as_u16()));
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            // At least a second: `Retry-After: 0` would have every caller call again at once.
            let wait = backoff::retry_after(response.headers())
                .unwrap_or(Duration::from_secs(1))
                .max(Duration::from_secs(1));
            self.inner.pacer.hold(method, Instant::now() + wait);
            tracing::info!(
                method,
                wait_ms = wait.as_millis() as u64,
                "Slack rate limit (429)"
            );
            if Instant::now() + wait >= deadline {
                return Err(SlackApiError::RateLimited {
                    method: method.to_string(),
                    retry_after: wait,
                });
            }
            return Ok(Read::WaitedOut);
        }
        if status.is_server_error() {
            // Waited for with the transport failures' growing backoff.
            return Ok(Read::ServerError(status.as_u16()));
        }
        if !status.is_success() {
            return Err(SlackApiError::Status {
                method: method.to_string(),
                status: status.as_u16(),
            });
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let head = match tokio::time::timeout(left, crate::body::read_head(response, MAX_ANSWER))
            .await
        {
            Err(_) => return Err(SlackApiError::deadline(method, "answer not read in time")),
            Ok(Err(e)) => {
                return Err(SlackApiError::deadline(
                    method,
                    &e.without_url().to_string(),
                ));
            }
            Ok(Ok(head)) if head.cut => return Err(SlackApiError::BadAnswer(method.to_string())),
            Ok(Ok(head)) => head,
        };
        let answer: Value = serde_json::from_slice(&head.bytes)
            .map_err(|_| SlackApiError::BadAnswer(method.to_string()))?;
        match answer.get("ok").and_then(Value::as_bool) {
            Some(true) => Ok(Read::Answer(answer)),
            Some(false) => Err(SlackApiError::Slack {
                method: method.to_string(),
                error: answer
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown_error")
                    .to_string(),
            }),
            None => Err(SlackApiError::BadAnswer(method.to_string())),
        }
    }

    /// Waits while Slack asked to wait for `method` (a 429 from any caller).
    async fn wait_out_rate_limit(
        &self,
        method: &str,
        deadline: Instant,
    ) -> Result<(), SlackApiError> {
        if let Some(until) = self.inner.pacer.held_until(method) {
            if until >= deadline {
                return Err(SlackApiError::RateLimited {
                    method: method.to_string(),
                    retry_after: until.saturating_duration_since(Instant::now()),
                });
            }
            tokio::time::sleep_until(until).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
