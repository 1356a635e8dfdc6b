//! The Slack client: posts a job's updates to the command's `response_url` while Slack accepts
//! it there (at most 5 times, within 30 minutes), then to the incoming webhook.
//!
//! Both URLs are credentials: they are never logged and never part of an error, which names the
//! path (`response_url` or `webhook`), the HTTP status and Slack's error code instead. A
//! `response_url` that does not start with the configured prefix came from somewhere other than
//! Slack (anyone who can write to the queue can put a URL there) and is never contacted.

use super::log::LogNotifier;
use super::{Notifier, NotifyError, Update, render};
use async_trait::async_trait;
use chatops_shared::config::{self, ConfigError, EnvSource};
use chatops_shared::job::JobMessage;
use chatops_shared::secret::Secret;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

/// Where Slack's `response_url`s live.
pub const DEFAULT_RESPONSE_URL_PREFIX: &str = "https://hooks.slack.com/";
/// How long Slack accepts posts to a `response_url` after the command.
pub const RESPONSE_URL_LIFETIME: time::Duration = time::Duration::minutes(30);
/// How many posts Slack accepts on one `response_url`.
pub const RESPONSE_URL_MAX_USES: u32 = 5;
/// Tries of one post while Slack answers 429.
const MAX_RATE_LIMITED_TRIES: u32 = 3;
/// Waiting allowed in one `notify` call (Retry-After and backoff together).
const MAX_WAIT: Duration = Duration::from_secs(60);
/// Waits before the retries of a post that met a network error or a 5xx.
const BACKOFF: [Duration; 2] = [Duration::from_millis(250), Duration::from_millis(750)];
/// When Slack answers 429 without a usable Retry-After.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Slack settings of the runner.
///
/// - `SLACK_WEBHOOK_URL`: incoming webhook, used once the `response_url` cannot be (optional;
///   without it, and without a usable `response_url`, messages go to the log).
/// - `CHATOPS_SLACK_RESPONSE_URL_PREFIX`: only `response_url`s starting with this are used
///   (default `https://hooks.slack.com/`; tests point it at their Slack double).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackNotifierConfig {
    /// The incoming webhook; a credential.
    pub webhook_url: Option<Secret>,
    /// Only `response_url`s that start with this are contacted. Ends with `/`, so that a host
    /// such as `hooks.slack.com.example.org` does not match.
    pub response_url_prefix: String,
}

impl Default for SlackNotifierConfig {
    fn default() -> Self {
        SlackNotifierConfig {
            webhook_url: None,
            response_url_prefix: DEFAULT_RESPONSE_URL_PREFIX.to_owned(),
        }
    }
}

impl SlackNotifierConfig {
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        let webhook_url =
            config::url(env, "SLACK_WEBHOOK_URL")?.map(|u| Secret::new(String::from(u)));
        let response_url_prefix = config::url(env, "CHATOPS_SLACK_RESPONSE_URL_PREFIX")?
            .map(|u| with_trailing_slash(u.as_str()))
            .unwrap_or_else(|| DEFAULT_RESPONSE_URL_PREFIX.to_owned());
        Ok(SlackNotifierConfig {
            webhook_url,
            response_url_prefix,
        })
    }
}

fn with_trailing_slash(prefix: &str) -> String {
    if prefix.ends_with('/') {
        prefix.to_owned()
    } else {
        format!("{prefix}/")
    }
}

/// Posts updates to Slack; see the module docs for the order of the paths.
#[derive(Debug)]
pub struct SlackNotifier {
    client: reqwest::Client,
    webhook_url: Option<Secret>,
    response_url_prefix: String,
    /// Per job: how its `response_url` has been used. Entries go after the job's last update,
    /// or once the URL has expired anyway.
    response_urls: Mutex<HashMap<Uuid, ResponseUrlUse>>,
    /// When Slack said to wait (429 `Retry-After`): no post before then, whichever job it is
    /// for. Keyed by path: `None` the webhook (shared by all jobs), `Some(job)` that job's
    /// `response_url`.
    not_before: Mutex<HashMap<Option<Uuid>, tokio::time::Instant>>,
    /// Where messages go when Slack cannot be reached by any configured path.
    log: LogNotifier,
}

#[derive(Debug, Clone, Copy)]
struct ResponseUrlUse {
    requested_at: OffsetDateTime,
    /// Posts Slack accepted.
    uses: u32,
    /// Slack refused it (expired, used up, revoked) or it is not a Slack URL.
    unusable: bool,
}

/// The two ways to reach Slack; the only way errors and logs name a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    ResponseUrl,
    Webhook,
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Path::ResponseUrl => "response_url",
            Path::Webhook => "webhook",
        })
    }
}

/// Why one post failed. The text never contains the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PostError {
    /// Slack said no (4xx other than 429, or a redirect): retrying will not help.
    Refused(String),
    /// Network or 5xx beyond our retries.
    Unavailable(String),
    /// Rate limited beyond what one call waits for: Slack asked to wait `wait` before the next try.
    RateLimited { wait: Duration, reason: String },
}

/// Waiting left in one `notify` call.
struct WaitBudget {
    left: Duration,
}

impl WaitBudget {
    fn new() -> Self {
        WaitBudget { left: MAX_WAIT }
    }

    /// Takes `wait` from the budget; false (and nothing taken) when it does not fit.
    fn take(&mut self, wait: Duration) -> bool {
        match self.left.checked_sub(wait) {
            Some(left) => {
                self.left = left;
                true
            }
            None => false,
        }
    }
}

impl SlackNotifier {
    /// Fails only when the HTTP client cannot be built (no TLS roots, for example).
    pub fn new(config: SlackNotifierConfig) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            // A redirect would take the message (and maybe the URL) somewhere Slack did not say.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("chatops-runner/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(SlackNotifier {
            client,
            webhook_url: config.webhook_url.filter(|u| !u.is_empty()),
            response_url_prefix: with_trailing_slash(&config.response_url_prefix),
            response_urls: Mutex::new(HashMap::new()),
            not_before: Mutex::new(HashMap::new()),
            log: LogNotifier,
        })
    }

    /// How long Slack asked us to wait before posting to this path again, if still waiting.
    fn held_for(&self, key: Option<Uuid>) -> Option<Duration> {
        let now = tokio::time::Instant::now();
        let held = self
            .not_before
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        held.get(&key)
            .filter(|until| **until > now)
            .map(|until| *until - now)
    }

    /// Remembers that Slack asked to wait `wait` before the next post to this path.
    fn hold(&self, key: Option<Uuid>, wait: Duration) {
        let now = tokio::time::Instant::now();
        let mut held = self
            .not_before
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        held.retain(|_, until| *until > now);
        // Keep the later of two waits: a shorter answer does not cancel a longer one.
        let until = now + wait;
        held.entry(key)
            .and_modify(|held_until| *held_until = (*held_until).max(until))
            .or_insert(until);
    }

    fn uses(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, ResponseUrlUse>> {
        self.response_urls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The job's `response_url` when it may be posted to now.
    fn usable_response_url<'a>(&self, job: &'a JobMessage) -> Option<&'a str> {
        let url = job.response_url.expose();
        if url.is_empty() {
            return None;
        }
        let now = OffsetDateTime::now_utc();
        if now - job.requested_at > RESPONSE_URL_LIFETIME {
            tracing::debug!(job_id = %job.job_id, "response_url has expired; using the webhook");
            return None;
        }
        let mut uses = self.uses();
        uses.retain(|_, u| now - u.requested_at <= RESPONSE_URL_LIFETIME);
        let entry = uses.entry(job.job_id).or_insert(ResponseUrlUse {
            requested_at: job.requested_at,
            uses: 0,
            unusable: false,
        });
        if entry.unusable || entry.uses >= RESPONSE_URL_MAX_USES {
            return None;
        }
        if !is_under_prefix(url, &self.response_url_prefix) {
            tracing::warn!(
                job_id = %job.job_id,
                "the job's response_url does not start with the configured Slack prefix; \
                 it is not contacted (was the queue message forged?)"
            );
            entry.unusable = true;
            return None;
        }
        Some(url)
    }

    fn record(&self, job_id: Uuid, accepted: bool) {
        if let Some(entry) = self.uses().get_mut(&job_id) {
            if accepted {
                entry.uses += 1;
            } else {
                entry.unusable = true;
            }
        }
    }

    async fn deliver(
        &self,
        job: &JobMessage,
        update: &Update,
        budget: &mut WaitBudget,
    ) -> Result<(), NotifyError> {
        if let Some(url) = self.usable_response_url(job) {
            let body = render::response_url_message(job, update);
            match self
                .post(Path::ResponseUrl, Some(job.job_id), url, &body, budget)
                .await
            {
                Ok(()) => {
                    self.record(job.job_id, true);
                    return Ok(());
                }
                Err(PostError::Refused(reason)) => {
                    tracing::warn!(job_id = %job.job_id, %reason, "Slack refused the response_url; using the webhook from now on");
                    self.record(job.job_id, false);
                }
                Err(PostError::Unavailable(reason)) => {
                    return Err(NotifyError::Transient(format!(
                        "{}: {reason}",
                        Path::ResponseUrl
                    )));
                }
                Err(PostError::RateLimited { wait, reason }) => {
                    return Err(NotifyError::RateLimited {
                        retry_after: wait,
                        detail: format!("{}: {reason}", Path::ResponseUrl),
                    });
                }
            }
        }
        let Some(webhook) = &self.webhook_url else {
            tracing::info!(job_id = %job.job_id, "no usable response_url and no webhook; the message goes to the log only");
            return self.log.notify(job, update).await;
        };
        let body = render::webhook_message(job, update);
        match self
            .post(Path::Webhook, None, webhook.expose(), &body, budget)
            .await
        {
            Ok(()) => Ok(()),
            Err(PostError::Refused(reason)) => Err(NotifyError::Permanent(format!(
                "{}: {reason}",
                Path::Webhook
            ))),
            Err(PostError::Unavailable(reason)) => Err(NotifyError::Transient(format!(
                "{}: {reason}",
                Path::Webhook
            ))),
            Err(PostError::RateLimited { wait, reason }) => Err(NotifyError::RateLimited {
                retry_after: wait,
                detail: format!("{}: {reason}", Path::Webhook),
            }),
        }
    }

    /// Posts `body`, waiting out 429s (as long as the budget allows) and retrying network
    /// errors and 5xx twice.
    async fn post(
        &self,
        path: Path,
        key: Option<Uuid>,
        url: &str,
        body: &Value,
        budget: &mut WaitBudget,
    ) -> Result<(), PostError> {
        let mut rate_limited = 0;
        let mut failures = 0;
        loop {
            // Slack asked (maybe while posting for another job) to wait: do not post before then.
            // Checked again after each wait: another post may have been told to wait longer.
            while let Some(wait) = self.held_for(key) {
                let reason = format!(
                    "rate limited (Slack asked to wait {}s)",
                    wait.as_secs().max(1)
                );
                if !budget.take(wait) {
                    return Err(PostError::RateLimited { wait, reason });
                }
                tracing::info!(%path, %reason, "waiting before posting, as Slack asked");
                tokio::time::sleep(wait).await;
            }
            let (wait, reason) = match self.client.post(url).json(body).send().await {
                Ok(response) if response.status() == StatusCode::TOO_MANY_REQUESTS => {
                    rate_limited += 1;
                    let wait = retry_after(response.headers());
                    self.hold(key, wait);
                    let reason = format!(
                        "rate limited (HTTP 429, Slack asked to wait {}s)",
                        wait.as_secs()
                    );
                    if rate_limited >= MAX_RATE_LIMITED_TRIES {
                        return Err(PostError::RateLimited { wait, reason });
                    }
                    // The wait happens at the top of the loop.
                    continue;
                }
                Ok(response) => {
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    match classify(path, status, &text) {
                        Err(PostError::Unavailable(reason)) => {
                            failures += 1;
                            let Some(wait) = BACKOFF.get(failures - 1) else {
                                return Err(PostError::Unavailable(reason));
                            };
                            (*wait, reason)
                        }
                        done => return done,
                    }
                }
                Err(e) => {
                    let reason = describe(&e);
                    failures += 1;
                    let Some(wait) = BACKOFF.get(failures - 1) else {
                        return Err(PostError::Unavailable(reason));
                    };
                    (*wait, reason)
                }
            };
            if !budget.take(wait) {
                return Err(PostError::Unavailable(reason));
            }
            tracing::info!(%path, %reason, wait_ms = wait.as_millis() as u64, "Slack post failed; trying again");
            tokio::time::sleep(wait).await;
        }
    }
}

#[async_trait]
impl Notifier for SlackNotifier {
    #[tracing::instrument(skip_all, fields(job_id = %job.job_id))]
    async fn notify(&self, job: &JobMessage, update: &Update) -> Result<(), NotifyError> {
        let mut budget = WaitBudget::new();
        let result = self.deliver(job, update, &mut budget).await;
        // After the last update the entry is no longer needed, unless that update is to be
        // tried again.
        if matches!(update, Update::Finished(_))
            && !matches!(
                result,
                Err(NotifyError::Transient(_) | NotifyError::RateLimited { .. })
            )
        {
            self.uses().remove(&job.job_id);
        }
        result
    }
}

/// Whether `url` is under `prefix`: same origin, and textually below it.
fn is_under_prefix(url: &str, prefix: &str) -> bool {
    let (Ok(parsed), Ok(base)) = (url::Url::parse(url), url::Url::parse(prefix)) else {
        return false;
    };
    url.starts_with(prefix)
        && parsed.origin() == base.origin()
        && parsed.username().is_empty()
        && parsed.password().is_none()
}

/// What Slack's answer means. Webhooks answer 200 `ok`; a `response_url` answers 200 and may
/// carry `{"ok": false, "error": …}`.
fn classify(path: Path, status: StatusCode, body: &str) -> Result<(), PostError> {
    let code = slack_code(body);
    if status.is_success() {
        let refused = path == Path::ResponseUrl
            && serde_json::from_str::<Value>(body)
                .is_ok_and(|v| v.get("ok") == Some(&Value::Bool(false)));
        return if refused {
            Err(PostError::Refused(format!(
                "HTTP {} {code}",
                status.as_u16()
            )))
        } else {
            Ok(())
        };
    }
    let reason = format!("HTTP {} {code}", status.as_u16())
        .trim_end()
        .to_owned();
    if status.is_redirection() {
        Err(PostError::Refused(format!(
            "{reason} (redirects are not followed)"
        )))
    } else if status.is_client_error() {
        Err(PostError::Refused(reason))
    } else {
        Err(PostError::Unavailable(reason))
    }
}

/// Slack's short error code from an answer body (`channel_is_archived`, or the `error` of a
/// JSON answer): its first word, which cannot carry a URL.
fn slack_code(body: &str) -> String {
    let body = body.trim();
    let code = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| body.to_owned());
    code.trim()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect()
}

/// The longest `Retry-After` taken at its word: a larger value (or a hostile one) is capped.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// `Retry-After` in seconds; Slack always sends seconds.
fn retry_after(headers: &HeaderMap) -> Duration {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(DEFAULT_RETRY_AFTER, |s| {
            Duration::from_secs(s).min(MAX_RETRY_AFTER)
        })
}

/// A network error in words, without its URL.
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else {
        format!("request failed: {}", clean(e))
    }
}

fn clean(e: &reqwest::Error) -> String {
    // reqwest's message ends in "for url (…)"; `without_url` would need ownership.
    let text = e.to_string();
    match e.url() {
        Some(url) => text.replace(url.as_str(), "[redacted]"),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::{FinalState, Outcome};
    use chatops_shared::job::{JobKind, SCHEMA_VERSION};
    use std::collections::BTreeMap;

    fn job(response_url: &str, age: time::Duration) -> JobMessage {
        JobMessage {
            schema: SCHEMA_VERSION,
            job_id: Uuid::new_v4(),
            kind: JobKind::Run,
            runbook: "restart-web".into(),
            params: BTreeMap::new(),
            user_id: "U1".into(),
            user_name: "ana".into(),
            team_id: "T1".into(),
            channel_id: "C1".into(),
            channel_name: None,
            response_url: Secret::new(response_url),
            requested_at: OffsetDateTime::now_utc() - age,
            enterprise_id: None,
            traceparent: None,
            started_at: None,
        }
    }

    fn notifier(webhook: Option<&str>) -> SlackNotifier {
        SlackNotifier::new(SlackNotifierConfig {
            webhook_url: webhook.map(Secret::new),
            ..SlackNotifierConfig::default()
        })
        .unwrap()
    }

    const SLACK_URL: &str = "https://hooks.slack.com/commands/T1/1/abc";

    #[test]
    fn config_from_env() {
        let env = HashMap::from([
            (
                "SLACK_WEBHOOK_URL",
                "https://hooks.slack.com/services/T0/B0/X",
            ),
            ("CHATOPS_SLACK_RESPONSE_URL_PREFIX", "http://127.0.0.1:4000"),
        ]);
        let c = SlackNotifierConfig::from_env(&env).unwrap();
        assert_eq!(
            c.webhook_url.map(|s| s.expose().to_owned()).as_deref(),
            Some("https://hooks.slack.com/services/T0/B0/X")
        );
        assert_eq!(c.response_url_prefix, "http://127.0.0.1:4000/");

        let c = SlackNotifierConfig::from_env(&HashMap::<&str, &str>::new()).unwrap();
        assert_eq!(c, SlackNotifierConfig::default());

        let bad = HashMap::from([("SLACK_WEBHOOK_URL", "hooks.slack.com/services/secret")]);
        let e = SlackNotifierConfig::from_env(&bad).unwrap_err().to_string();
        assert!(
            e.starts_with("SLACK_WEBHOOK_URL: ") && !e.contains("secret"),
            "{e}"
        );
    }

    #[test]
    fn only_urls_under_the_prefix_are_trusted() {
        let p = DEFAULT_RESPONSE_URL_PREFIX;
        assert!(is_under_prefix(SLACK_URL, p));
        for forged in [
            "https://hooks.slack.com.evil.example/commands/x",
            "https://hooks.slack.com@evil.example/commands/x",
            "http://hooks.slack.com/commands/x",
            "https://evil.example/https://hooks.slack.com/",
            "https://hooks.slack.com:8443/commands/x",
            "not a url",
        ] {
            assert!(!is_under_prefix(forged, p), "{forged}");
        }
        assert_eq!(with_trailing_slash("https://hooks.slack.com"), p);
    }

    #[test]
    fn response_url_is_used_five_times_within_thirty_minutes() {
        let n = notifier(None);
        let fresh = job(SLACK_URL, time::Duration::minutes(29));
        for _ in 0..RESPONSE_URL_MAX_USES {
            assert_eq!(n.usable_response_url(&fresh), Some(SLACK_URL));
            n.record(fresh.job_id, true);
        }
        assert_eq!(n.usable_response_url(&fresh), None);

        assert_eq!(
            n.usable_response_url(&job(SLACK_URL, time::Duration::minutes(31))),
            None
        );
        assert_eq!(n.usable_response_url(&job("", time::Duration::ZERO)), None);
        assert_eq!(
            n.usable_response_url(&job("https://evil.example/x", time::Duration::ZERO)),
            None
        );

        let refused = job(SLACK_URL, time::Duration::ZERO);
        assert!(n.usable_response_url(&refused).is_some());
        n.record(refused.job_id, false);
        assert_eq!(n.usable_response_url(&refused), None);
    }

    #[test]
    fn answers_are_classified() {
        let ok = StatusCode::OK;
        assert_eq!(classify(Path::Webhook, ok, "ok"), Ok(()));
        assert_eq!(classify(Path::ResponseUrl, ok, r#"{"ok":true}"#), Ok(()));
        assert_eq!(
            classify(
                Path::ResponseUrl,
                ok,
                r#"{"ok":false,"error":"expired_url"}"#
            ),
            Err(PostError::Refused("HTTP 200 expired_url".into()))
        );
        assert_eq!(
            classify(Path::Webhook, StatusCode::GONE, "channel_is_archived"),
            Err(PostError::Refused("HTTP 410 channel_is_archived".into()))
        );
        assert_eq!(
            classify(
                Path::Webhook,
                StatusCode::INTERNAL_SERVER_ERROR,
                "rollup_error"
            ),
            Err(PostError::Unavailable("HTTP 500 rollup_error".into()))
        );
        assert!(matches!(
            classify(Path::Webhook, StatusCode::FOUND, ""),
            Err(PostError::Refused(_))
        ));
    }

    #[test]
    fn slack_codes_cannot_carry_urls() {
        assert_eq!(slack_code("  invalid_payload\n"), "invalid_payload");
        assert_eq!(slack_code(r#"{"ok":false,"error":"used_url"}"#), "used_url");
        assert_eq!(slack_code("see https://hooks.slack.com/x"), "see");
        assert_eq!(slack_code("https://hooks.slack.com/x"), "https");
        assert_eq!(slack_code("<html>"), "");
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), DEFAULT_RETRY_AFTER);
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Duration::from_secs(7));
        h.insert(RETRY_AFTER, "18446744073709551615".parse().unwrap());
        assert_eq!(retry_after(&h), MAX_RETRY_AFTER);
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), DEFAULT_RETRY_AFTER);
    }

    #[test]
    fn wait_budget_is_bounded() {
        let mut b = WaitBudget::new();
        assert!(b.take(Duration::from_secs(59)));
        assert!(!b.take(Duration::from_secs(2)));
        assert!(b.take(Duration::from_secs(1)));
    }

    #[tokio::test]
    async fn without_any_slack_path_the_log_gets_the_message() {
        let n = notifier(None);
        let j = job("https://evil.example/x", time::Duration::ZERO);
        let done = Update::Finished(Outcome::without_run(FinalState::Refused, "no"));
        assert_eq!(
            n.notify(
                &j,
                &Update::Running {
                    started_at: OffsetDateTime::now_utc()
                }
            )
            .await,
            Ok(())
        );
        assert_eq!(n.notify(&j, &done).await, Ok(()));
        assert!(n.uses().is_empty(), "the finished job's entry is forgotten");
    }

    #[tokio::test]
    async fn unreachable_webhook_is_transient_and_names_no_url() {
        // Port 1 on loopback: connection refused, at once.
        let n = notifier(Some("http://127.0.0.1:1/services/T0/B0/SECRETTOKEN"));
        let j = job("", time::Duration::ZERO);
        let e = n
            .notify(
                &j,
                &Update::Running {
                    started_at: OffsetDateTime::now_utc(),
                },
            )
            .await
            .unwrap_err();
        assert_eq!(
            e,
            NotifyError::Transient("webhook: could not connect".into())
        );
        assert!(!format!("{e} {e:?}").contains("SECRETTOKEN"));
    }
}
