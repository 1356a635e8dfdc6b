//! What the ingress and the runner must agree on, and nothing that only one of them needs.
//!
//! - [`job`]: the job message on the queue (versioned, documented in `docs/job-message.md`).
//! - [`command`]: the command language (`<runbook> [positional…] [name=value…]`).
//! - [`catalog`]: the runbook catalog, validation of a parsed command, authorization.
//! - [`queue`]: queue access behind [`queue::JobQueue`], with the Azure Storage implementation.
//! - [`mrkdwn`]: escaping text for Slack messages; [`slack_id`]: what a Slack ID looks like.
//! - [`slack_api`]: the one Slack Web API client (bot token), for every service.
//! - [`audit`]: the append-only audit log.
//! - [`records`]: job records in Blob storage, over [`blob::BlobStore`].
//! - [`credential`]: the `azure_identity` credential chosen by configuration.
//! - [`recent_ids`]: job ids claimed recently in this process.
//! - [`body`]: reading HTTP answer bodies with a bound; [`backoff`]: waits between retries.
//! - `storage`: what queue and blob access share (failure classification, auth, retry loop).
//! - [`workspaces`]: which Slack workspaces may use the app (`SLACK_TEAM_ID`, `SLACK_ENTERPRISE_ID`).
//! - [`config`], [`runtime`], [`telemetry`], [`shutdown`], [`secret`]: plumbing.

pub mod audit;
pub mod backoff;
pub mod blob;
pub mod body;
pub mod catalog;
pub mod command;
pub mod config;
pub mod credential;
pub mod job;
pub mod membership;
pub mod mrkdwn;
pub mod queue;
pub mod recent_ids;
pub mod records;
pub mod runtime;
pub mod secret;
pub mod shutdown;
pub mod slack_api;
pub mod slack_id;
mod storage;
pub mod telemetry;
pub mod tls;
pub mod workspaces;
