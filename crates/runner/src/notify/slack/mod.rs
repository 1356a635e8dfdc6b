//! The Slack client: posts a job's updates to the command's `response_url` while Slack accepts
//! it there (at most 5 times, within 30 minutes), then to the incoming webhook. A notice (why a
//! stop did nothing) is for its asker only: [`SlackNotifier::tell_requester`], else the log.
//!
//! Both URLs are credentials: they are never logged and never part of an error, which names the
//! path (`response_url` or `webhook`), the HTTP status and Slack's error code instead. A
//! `response_url` that does not start with the configured prefix came from somewhere other than
//! Slack and is never contacted (defence in depth: the job message is signed, so only a holder of
//! the signing key can put a URL there).
//!
//! - `config`: the settings; `response_url`: when a job's URL may be used; `post`: one post
//!   with its waits and retries; `answer`: what Slack's answer means.

mod answer;
mod config;
mod post;
mod response_url;

pub use config::{DEFAULT_RESPONSE_URL_PREFIX, SlackNotifierConfig};
pub use response_url::{RESPONSE_URL_LIFETIME, RESPONSE_URL_MAX_USES};

use super::log::LogNotifier;
use super::{Notifier, NotifyError, Update, render};
use answer::{Path, PostError};
use async_trait::async_trait;
use chatops_shared::job::JobMessage;
use chatops_shared::secret::Secret;
use post::WaitBudget;
use response_url::ResponseUrlUse;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use uuid::Uuid;

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

impl SlackNotifier {
    /// Fails only when the HTTP client cannot be built (no TLS roots, for example).
    pub fn new(config: SlackNotifierConfig) -> Result<Self, reqwest::Error> {
        let client = chatops_shared::tls::http_client()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            // A redirect would take the message (and maybe the URL) somewhere Slack did not say.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("chatops-runner/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(SlackNotifier {
            client,
            webhook_url: config.webhook_url.filter(|u| !u.is_empty()),
            response_url_prefix: config::with_trailing_slash(&config.response_url_prefix),
            response_urls: Mutex::new(HashMap::new()),
            not_before: Mutex::new(HashMap::new()),
            log: LogNotifier,
        })
    }

    /// Shows `text` to the requester only, through the command's `response_url` while it is
    /// usable (`response_type: ephemeral`, the channel's messages untouched). `Ok(false)`: the
    /// job has no usable `response_url`.
    pub async fn tell_requester(&self, job: &JobMessage, text: &str) -> Result<bool, NotifyError> {
        let Some(url) = self.usable_response_url(job) else {
            return Ok(false);
        };
        let body = serde_json::json!({
            "response_type": "ephemeral",
            "replace_original": false,
            "text": text,
        });
        let mut budget = WaitBudget::new();
        match self
            .post(Path::ResponseUrl, Some(job.job_id), url, &body, &mut budget)
            .await
        {
            Ok(()) => {
                self.record(job.job_id, true);
                Ok(true)
            }
            Err(PostError::Refused(reason)) => {
                self.record(job.job_id, false);
                Err(NotifyError::Permanent(format!(
                    "{}: {reason}",
                    Path::ResponseUrl
                )))
            }
            Err(PostError::Unavailable(reason)) => Err(NotifyError::Transient(format!(
                "{}: {reason}",
                Path::ResponseUrl
            ))),
            Err(PostError::RateLimited { wait, reason }) => Err(NotifyError::RateLimited {
                retry_after: wait,
                detail: format!("{}: {reason}", Path::ResponseUrl),
            }),
        }
    }

    /// Delivers `update` as [`Notifier::notify`] does; `Ok(false)` when no Slack path was left
    /// and it went to the log only (the bot then tells the requester itself).
    pub async fn notify_in_slack(
        &self,
        job: &JobMessage,
        update: &Update,
    ) -> Result<bool, NotifyError> {
        let mut budget = WaitBudget::new();
        let result = self.deliver(job, update, &mut budget).await;
        if update.is_last(&result) {
            self.uses().remove(&job.job_id);
        }
        result
    }

    async fn deliver(
        &self,
        job: &JobMessage,
        update: &Update,
        budget: &mut WaitBudget,
    ) -> Result<bool, NotifyError> {
        if let Some(url) = self.usable_response_url(job) {
            let body = render::response_url_message(job, update);
            match self
                .post(Path::ResponseUrl, Some(job.job_id), url, &body, budget)
                .await
            {
                Ok(()) => {
                    self.record(job.job_id, true);
                    return Ok(true);
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
            return self.log.notify(job, update).await.map(|()| false);
        };
        if job.has_secret_values() {
            // Its requester was told its statuses are for them only (Slack shows a command as
            // typed, secret included, above any answer in the channel): not in the webhook's.
            tracing::info!(job_id = %job.job_id, "no usable response_url for a job given a secret value; not posted to the webhook's channel; the message goes to the log only");
            return self.log.notify(job, update).await.map(|()| false);
        }
        let body = render::webhook_message(job, update);
        match self
            .post(Path::Webhook, None, webhook.expose(), &body, budget)
            .await
        {
            Ok(()) => Ok(true),
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
}

#[async_trait]
impl Notifier for SlackNotifier {
    #[tracing::instrument(skip_all, fields(job_id = %job.job_id))]
    async fn notify(&self, job: &JobMessage, update: &Update) -> Result<(), NotifyError> {
        if matches!(update, Update::Notice(_)) {
            // Why a stop did nothing concerns its asker alone: beside the answer, not over it
            // (a stop from another channel was answered there for the asker only), and never
            // in the webhook's channel.
            return match self.tell_requester(job, &render::text(job, update)).await {
                Ok(true) => Ok(()),
                Ok(false) | Err(NotifyError::Permanent(_)) => {
                    tracing::info!(job_id = %job.job_id, "no usable response_url for a notice to its asker; it goes to the log only");
                    self.log.notify(job, update).await
                }
                Err(e) => Err(e),
            };
        }
        self.notify_in_slack(job, update).await.map(drop)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::executor::{FinalState, Outcome};
    use chatops_shared::job::{JobKind, SCHEMA_VERSION};
    use std::collections::BTreeMap;
    use time::OffsetDateTime;

    pub(crate) fn job(response_url: &str, age: time::Duration) -> JobMessage {
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
            response_url: Some(Secret::new(response_url)),
            requested_at: OffsetDateTime::now_utc() - age,
            enterprise_id: None,
            traceparent: None,
            started_at: None,
            record_day: None,
            target: None,
            rerun_of: None,
            catalog_version: None,
            secret_params: Vec::new(),
        }
    }

    pub(crate) fn notifier(webhook: Option<&str>) -> SlackNotifier {
        SlackNotifier::new(SlackNotifierConfig {
            webhook_url: webhook.map(Secret::new),
            ..SlackNotifierConfig::default()
        })
        .unwrap()
    }

    pub(crate) const SLACK_URL: &str = "https://hooks.slack.com/commands/T1/1/abc";

    /// The offsets a timestamp may come with (the extremes, one of minutes, one of seconds).
    pub(crate) fn odd_offsets() -> [time::UtcOffset; 5] {
        use time::UtcOffset;
        [
            UtcOffset::UTC,
            UtcOffset::from_hms(-23, -59, -59).unwrap(),
            UtcOffset::from_hms(23, 59, 59).unwrap(),
            UtcOffset::from_hms(5, 45, 0).unwrap(),
            UtcOffset::from_hms(0, 0, -30).unwrap(),
        ]
    }

    /// The first and last instants `time` can hold, in each of [`odd_offsets`]: what renders a
    /// date must not panic on any (ARM sends timestamps with offsets of its choosing).
    pub(crate) fn extreme_instants() -> Vec<OffsetDateTime> {
        use time::PrimitiveDateTime;
        odd_offsets()
            .into_iter()
            .flat_map(|offset| {
                [PrimitiveDateTime::MAX, PrimitiveDateTime::MIN].map(|at| at.assume_offset(offset))
            })
            .collect()
    }

    /// A job that completed at `at`, having started then too.
    pub(crate) fn completed_at(at: OffsetDateTime) -> Update {
        Update::Finished(Outcome {
            state: FinalState::Completed,
            output: String::new(),
            error: None,
            started_at: Some(at),
            ended_at: at,
            stopped_by: None,
        })
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
    async fn a_notice_without_a_usable_response_url_goes_to_the_log_never_to_the_webhook() {
        // Were the notice posted to this webhook, the refused connection would be an error.
        let n = notifier(Some("http://127.0.0.1:1/services/T0/B0/SECRETTOKEN"));
        let expired = job(SLACK_URL, time::Duration::hours(1));
        let elsewhere = job("https://evil.example/x", time::Duration::ZERO);
        for j in [expired, elsewhere] {
            let notice = Update::Notice("nothing to stop".into());
            assert_eq!(n.notify(&j, &notice).await, Ok(()));
        }
        // The webhook is there for other updates: the same notifier does use it.
        let running = Update::Running {
            started_at: OffsetDateTime::now_utc(),
        };
        assert!(
            n.notify(&job("", time::Duration::ZERO), &running)
                .await
                .is_err()
        );
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
