//! The bot-token path (`SLACK_BOT_TOKEN`): one job card per job, posted with
//! `chat.postMessage` in the channel the command came from and updated in place with
//! `chat.update` on every change; the output in the card's thread when the job ends.
//!
//! - Where the card is (`channel` + `ts`) goes into the job's record right after it is posted,
//!   before any update: a runner that takes the job over reads it there and keeps updating the
//!   same message.
//! - Pacing across jobs: posts one at a time per channel, `CHATOPS_SLACK_POST_INTERVAL` apart,
//!   updates one at a time per workspace, `CHATOPS_SLACK_UPDATE_INTERVAL` apart (the shared
//!   client's `SlackApi::pace`); a 429 is waited out for its `Retry-After` by the client.
//! - Never silence (`ok: false`, see `/work/shared/reference/slack.md`): a card that can no
//!   longer be updated (`message_not_found`, `cant_update_message`) is posted anew; when the
//!   channel is gone, archived or closed to the bot, the card goes to the requester's DM, and
//!   failing that to the command's `response_url` / the webhook / the log (`fallback`).
//! - A job from a channel the bot is not in shows there through the command's `response_url`
//!   (`in_channel` as without a bot token; `ephemeral` when a secret parameter has a value,
//!   see `render::response_url_message`), and the requester gets a one-line ephemeral hint
//!   to invite the bot. A job without a `response_url` (from a modal) gets its card in the
//!   requester's DM.
//!
//! - Live tail: while a job runs, its new output goes into the thread, one reply per batch
//!   (`CHATOPS_SLACK_TAIL_INTERVAL`), through the same per-channel pacing; a reply that cannot
//!   go out within the interval is skipped and counted, so the tail never holds up the final
//!   status. At the end the thread gets only what the tail has not shown, and a note when
//!   lines were not shown live, with where the whole output is.
//!
//! - `config`: the pacing settings; `card`: the card's blocks;
//!   `thread`: the output replies; `live`: the live tail's replies.

mod card;
mod config;
mod live;
mod thread;

pub use config::{
    BotSettings, DEFAULT_CALL_PATIENCE, DEFAULT_POST_INTERVAL, DEFAULT_TAIL_INTERVAL,
    DEFAULT_UPDATE_INTERVAL,
};
pub use thread::{MAX_ERROR_MESSAGES, MAX_OUTPUT_MESSAGES};

use super::slack::SlackNotifier;
use super::{Notifier, NotifyError, Update};
use async_trait::async_trait;
use chatops_shared::job::JobMessage;
use chatops_shared::records::{ExecutorRef, JobRecord, Records, SlackMessageRef, record_name_of};
use chatops_shared::slack_api::{Pace, Posted, SlackApi, SlackApiError};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use tokio::time::Instant;
use uuid::Uuid;

/// The one-line hint to the requester when the bot is not in the job's channel.
pub const INVITE_HINT: &str = ":information_source: I am not a member of this channel, so this job's status comes through the command's reply, which Slack lets me update only for 30 minutes. Invite me (`/invite` the app) for a live job card with the output in its thread.";

/// `chat.update` errors after which the card cannot be updated but the channel can take a new
/// post.
const MESSAGE_GONE: &[&str] = &[
    "message_not_found",
    "cant_update_message",
    "edit_window_closed",
];
/// Errors that close the channel to the bot.
const CHANNEL_CLOSED: &[&str] = &[
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "restricted_action",
    "restricted_action_read_only_channel",
    "restricted_action_thread_only_channel",
    "restricted_action_non_threadable_channel",
    "team_access_not_granted",
];

/// Where one job's status goes, as learnt while posting it.
#[derive(Debug, Clone, Default)]
struct Route {
    /// The card.
    card: Option<Posted>,
    /// The bot cannot post in the job's channel: updates go through the `response_url`.
    outside: bool,
    /// The invite hint was shown.
    hinted: bool,
    /// What the live tail showed of the output.
    live: live::Shown,
}

/// Posts and updates job cards with the bot token; see the module docs.
pub struct BotNotifier {
    api: SlackApi,
    records: Records,
    /// The `response_url` / webhook / log path, for what the bot cannot post.
    fallback: SlackNotifier,
    settings: BotSettings,
    /// Per job, until its last update.
    routes: Mutex<HashMap<Uuid, Route>>,
}

impl std::fmt::Debug for BotNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotNotifier")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl BotNotifier {
    pub fn new(
        api: SlackApi,
        records: Records,
        fallback: SlackNotifier,
        settings: BotSettings,
    ) -> Self {
        BotNotifier {
            api,
            records,
            fallback,
            settings,
            routes: Mutex::new(HashMap::new()),
        }
    }

    fn route(&self, job_id: Uuid) -> Route {
        self.lock().get(&job_id).cloned().unwrap_or_default()
    }

    fn set_route(&self, job_id: Uuid, route: Route) {
        self.lock().insert(job_id, route);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Route>> {
        self.routes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.settings.call_patience
    }

    /// The job's record, if it has one yet.
    async fn record(&self, job: &JobMessage) -> Result<Option<JobRecord>, NotifyError> {
        match self.records.read(&record_name_of(job)).await {
            Ok(found) => Ok(found.map(|v| v.record)),
            Err(e) if e.is_transient() => Err(NotifyError::Transient(format!(
                "job record unavailable: {e}"
            ))),
            Err(e) => {
                tracing::warn!(error = %e, "could not read the job's record; posting without it");
                Ok(None)
            }
        }
    }

    /// Keeps where the card is in the job's record, for a runner that takes the job over.
    async fn remember(&self, job: &JobMessage, at: &Posted) {
        let want = SlackMessageRef {
            channel: at.channel.clone(),
            ts: at.ts.clone(),
        };
        let written = self
            .records
            .update(&record_name_of(job), |record| {
                if record.slack_message.as_ref() == Some(&want) {
                    return false;
                }
                record.slack_message = Some(want.clone());
                true
            })
            .await;
        if let Err(e) = written {
            tracing::warn!(error = %e, "could not keep the job card's place in the job record; a runner taking the job over will post a new card");
        }
    }

    async fn post(&self, channel: &str, message: &Value) -> Result<Posted, SlackApiError> {
        let key = format!("post:{channel}");
        let pace = Pace {
            key: &key,
            interval: self.settings.post_interval,
        };
        self.api
            .post_message(channel, message, Some(pace), self.deadline())
            .await
    }

    async fn update(
        &self,
        job: &JobMessage,
        at: &Posted,
        message: &Value,
    ) -> Result<(), SlackApiError> {
        let key = format!("update:{}", job.team_id);
        let pace = Pace {
            key: &key,
            interval: self.settings.update_interval,
        };
        self.api
            .update_message(at, message, Some(pace), self.deadline())
            .await
    }

    /// Posts or updates the card; then, when the job ended, its output in the thread.
    async fn show(&self, job: &JobMessage, update: &Update) -> Result<(), NotifyError> {
        let mut route = self.route(job.job_id);
        if route.outside {
            return self.outside(job, update, &mut route).await;
        }
        let record = self.record(job).await?;
        let portal = record.as_ref().and_then(|r| match &r.executor {
            Some(ExecutorRef::Automation { job_name }) => self.settings.portal_link(job_name),
            _ => None,
        });
        let local = matches!(
            record.as_ref().and_then(|r| r.executor.as_ref()),
            Some(ExecutorRef::Local { .. })
        );
        let message = card::card(job, update, portal.as_deref());
        let known = route.card.clone().or_else(|| {
            record
                .as_ref()
                .and_then(|r| r.slack_message.as_ref())
                .map(|m| Posted {
                    channel: m.channel.clone(),
                    ts: m.ts.clone(),
                })
        });
        let card = match known {
            Some(at) => match self.update(job, &at, &message).await {
                Ok(()) => at,
                Err(e) if has_code(&e, MESSAGE_GONE) => {
                    tracing::warn!(error = %e, "the job card can no longer be updated; posting it anew");
                    match self.post(&job.channel_id, &message).await {
                        Ok(at) => at,
                        Err(e) if has_code(&e, CHANNEL_CLOSED) => {
                            match self.direct(job, update, &message, &mut route, &e).await? {
                                Some(at) => at,
                                None => return Ok(()),
                            }
                        }
                        Err(e) => return Err(failed(e)),
                    }
                }
                Err(e) if has_code(&e, CHANNEL_CLOSED) => {
                    tracing::warn!(error = %e, "the job card's channel is closed to the bot; telling the requester directly");
                    match self.direct(job, update, &message, &mut route, &e).await? {
                        Some(at) => at,
                        None => return Ok(()),
                    }
                }
                Err(e) => return Err(failed(e)),
            },
            None => match self.post(&job.channel_id, &message).await {
                Ok(at) => at,
                Err(e) if has_code(&e, CHANNEL_CLOSED) => {
                    tracing::info!(error = %e, "the bot cannot post in the job's channel");
                    if job.response_url.is_some() {
                        route.outside = true;
                        return self.outside(job, update, &mut route).await;
                    }
                    match self.direct(job, update, &message, &mut route, &e).await? {
                        Some(at) => at,
                        None => return Ok(()),
                    }
                }
                Err(e) => return Err(failed(e)),
            },
        };
        if route.card.as_ref() != Some(&card) {
            if route.card.is_some() {
                // A new card (the old one was deleted, or can no longer be edited): the live
                // output is under the old one, so the new card's thread gets the output whole.
                route.live = live::Shown::default();
            }
            self.remember(job, &card).await;
            route.card = Some(card.clone());
        }
        let shown_live = route.live.clone();
        self.set_route(job.job_id, route);
        if let Update::Finished(outcome) = update {
            let replies = if shown_live.used {
                // The live tail showed the output already; the rest is its closing note.
                let whole = whole_output(job, portal.as_deref(), local);
                let mut replies: Vec<Value> = live::closing(job, &shown_live, &whole)
                    .into_iter()
                    .collect();
                replies.extend(thread::error_replies(job, outcome, portal.as_deref()));
                replies
            } else {
                thread::replies(job, outcome, portal.as_deref())
            };
            self.thread(&card, replies).await;
        }
        Ok(())
    }

    /// Posts a batch of a running job's output under its card; see the module docs.
    async fn live(&self, job: &JobMessage, text: &str, last: bool) {
        let mut route = self.route(job.job_id);
        let Some(card) = route.card.clone().filter(|_| !route.outside) else {
            // No card to reply under: the output comes with the final status.
            return;
        };
        route.live.used = true;
        let lines = live::lines(text);
        if route.live.off {
            route.live.skipped += lines;
            self.set_route(job.job_id, route);
            return;
        }
        let (mut reply, hidden) = live::reply(job, text);
        if let Value::Object(fields) = &mut reply {
            fields.insert("thread_ts".into(), Value::String(card.ts.clone()));
        }
        // A batch waits at most until the next one is due; the last one as long as any call.
        let deadline = if last {
            self.deadline()
        } else {
            Instant::now() + self.settings.tail_interval
        };
        let key = format!("post:{}", card.channel);
        let pace = Pace {
            key: &key,
            interval: self.settings.post_interval,
        };
        // The channel's posts may be paced past the next batch: then this one is not sent.
        let posted = self
            .api
            .post_message(&card.channel, &reply, Some(pace), deadline)
            .await;
        match posted {
            Ok(_) => {
                route.live.lines += lines - hidden;
                route.live.skipped += hidden;
            }
            Err(e) => {
                route.live.skipped += lines;
                if has_code(&e, CHANNEL_CLOSED) || has_code(&e, MESSAGE_GONE) {
                    tracing::warn!(error = %e, "the job's thread is closed to the live tail; its output comes with the final status");
                    route.live.off = true;
                } else {
                    tracing::info!(error = %e, lines, "a live output reply was skipped");
                }
            }
        }
        self.set_route(job.job_id, route);
    }

    /// The card in the requester's DM, when the job's channel is closed to the bot (`Some`);
    /// failing that, the `response_url` path (`None`: delivered there).
    async fn direct(
        &self,
        job: &JobMessage,
        update: &Update,
        message: &Value,
        route: &mut Route,
        why: &SlackApiError,
    ) -> Result<Option<Posted>, NotifyError> {
        match self.post(&job.user_id, message).await {
            Ok(at) => Ok(Some(at)),
            Err(e) => {
                tracing::warn!(error = %e, first = %why, "could not reach the requester by DM either; using the command's reply");
                route.outside = true;
                self.outside(job, update, route).await?;
                Ok(None)
            }
        }
    }

    /// A job whose channel the bot is not in: the `response_url` (in the channel), with a
    /// one-time hint to the requester. A final status with no Slack path left (the
    /// `response_url` used up or lapsed, no webhook) goes to the requester by DM.
    async fn outside(
        &self,
        job: &JobMessage,
        update: &Update,
        route: &mut Route,
    ) -> Result<(), NotifyError> {
        let shown = self.fallback.notify_in_slack(job, update).await?;
        if !shown && matches!(update, Update::Finished(_)) {
            tracing::info!(
                "no Slack path left for the final status of a job outside the bot's channels; telling the requester by DM"
            );
            let message = card::card(job, update, None);
            self.post(&job.user_id, &message).await.map_err(failed)?;
        }
        if !route.hinted {
            match self.fallback.tell_requester(job, INVITE_HINT).await {
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "could not show the requester the invite hint")
                }
            }
            route.hinted = true;
        }
        self.set_route(job.job_id, route.clone());
        Ok(())
    }

    /// Posts `replies` under the card. Best effort: the card shows the outcome already, so a
    /// reply that cannot be posted is logged, not retried with the card.
    async fn thread(&self, card: &Posted, replies: Vec<Value>) {
        for mut reply in replies {
            if let Value::Object(fields) = &mut reply {
                fields.insert("thread_ts".into(), Value::String(card.ts.clone()));
            }
            if let Err(e) = self.post(&card.channel, &reply).await {
                tracing::warn!(error = %e, "could not post the job's output in its thread");
                return;
            }
        }
    }

    /// A notice (a stop that found nothing to stop) to the requester: an ephemeral reply to the
    /// command while its `response_url` is usable, else an ephemeral message in the channel,
    /// else a DM.
    async fn notice(&self, job: &JobMessage, update: &Update) -> Result<(), NotifyError> {
        let text = super::render::text(job, update);
        match self.fallback.tell_requester(job, &text).await {
            Ok(true) => return Ok(()),
            Err(e @ (NotifyError::Transient(_) | NotifyError::RateLimited { .. })) => {
                return Err(e);
            }
            // No usable response_url, or Slack refused it: the bot tells the requester.
            Ok(false) | Err(NotifyError::Permanent(_)) => {}
        }
        let message = serde_json::json!({ "text": text });
        match self
            .api
            .post_ephemeral(&job.channel_id, &job.user_id, &message, self.deadline())
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if e.is_transient() => Err(failed(e)),
            Err(_) => self
                .post(&job.user_id, &message)
                .await
                .map(drop)
                .map_err(failed),
        }
    }
}

#[async_trait]
impl Notifier for BotNotifier {
    #[tracing::instrument(skip_all, fields(job_id = %job.job_id))]
    async fn notify(&self, job: &JobMessage, update: &Update) -> Result<(), NotifyError> {
        let result = match update {
            Update::Notice(_) => self.notice(job, update).await,
            Update::Running { .. } | Update::Waiting { .. } | Update::Finished(_) => {
                match self.show(job, update).await {
                    // The bot cannot (a revoked token, a missing scope): the command's reply
                    // or the webhook still can.
                    Err(NotifyError::Permanent(why)) => {
                        tracing::warn!(error = %why, "the bot could not show the job; using the command's reply or the webhook");
                        match self.fallback.notify_in_slack(job, update).await {
                            Ok(true) => Ok(()),
                            Ok(false) => Err(NotifyError::Permanent(why)),
                            Err(e) => Err(e),
                        }
                    }
                    shown => shown,
                }
            }
        };
        if update.is_last(&result) {
            self.lock().remove(&job.job_id);
        }
        result
    }

    fn live_tail(&self) -> Option<std::time::Duration> {
        self.settings.live_tail()
    }

    async fn output(&self, job: &JobMessage, text: &str, last: bool) {
        self.live(job, text, last).await;
    }
}

/// Where the whole output of a job is, for the note on output the thread does not show: the
/// Azure portal for an Automation job, the output kept next to a local script's record.
fn whole_output(job: &JobMessage, portal: Option<&str>, local: bool) -> String {
    match portal {
        Some(link) => format!("All of it is in <{link}|the Azure portal>."),
        None if local => format!(
            "All of it is kept with the job record: an operator reads it with `chatops-runner output {}`.",
            job.short_id()
        ),
        None => format!(
            "The job record keeps its end (`/runbook status {}`).",
            job.short_id()
        ),
    }
}

/// Whether Slack refused with one of `codes`.
fn has_code(e: &SlackApiError, codes: &[&str]) -> bool {
    e.code().is_some_and(|c| codes.contains(&c))
}

/// A failed call as the worker sees it: worth trying again, or not.
fn failed(e: SlackApiError) -> NotifyError {
    match e {
        SlackApiError::RateLimited { retry_after, .. } => NotifyError::RateLimited {
            retry_after,
            detail: e.to_string(),
        },
        e if e.is_transient() => NotifyError::Transient(e.to_string()),
        e => NotifyError::Permanent(e.to_string()),
    }
}
