//! The ingress: verifies Slack slash commands and interactions, validates them against the runbook catalog,
//! puts one job message on the queue and answers Slack at once.
//!
//! - [`slack`]: request verification and the slash-command form.
//! - [`routes`]: one thin handler per route.
//! - [`run`]: a runbook command checked against the catalog and queued ([`enqueue`]).
//! - [`forms`]: modals for a runbook's parameters, opened from a command, submitted through
//!   `/slack/interactions`.
//! - [`jobs`]: job control from chat (`status`, `stop`, `rerun`, `history`), from the records.
//! - [`reply`]: every answer, and the one place errors become responses.
//! - [`app`]: `Application::build`, the router and its state.
//! - [`readiness`]: `/readyz`'s answer, cached so that it cannot flood the storage account.
//! - [`metrics`]: command outcomes and answer times, and the separate `/metrics` listener.
//! - [`serve`]: connections: header deadline, connection cap, graceful stop.
//! - [`config`]: every environment variable the ingress reads.

pub mod app;
pub mod config;
pub mod enqueue;
pub mod forms;
pub mod jobs;
pub mod metrics;
pub mod policy;
pub mod readiness;
pub mod reply;
pub mod routes;
pub mod run;
pub mod serve;
pub mod slack;
