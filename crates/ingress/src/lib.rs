//! The ingress: verifies Slack slash commands, validates them against the runbook catalog,
//! puts one job message on the queue and answers Slack at once.
//!
//! - [`slack`]: request verification and the slash-command form.
//! - [`routes`]: one thin handler per route.
//! - [`reply`]: every answer, and the one place errors become responses.
//! - [`app`]: `Application::build`, the router and its state.
//! - [`readiness`]: `/readyz`'s answer, cached so that it cannot flood the storage account.
//! - [`serve`]: connections: header deadline, connection cap, graceful stop.
//! - [`config`]: every environment variable the ingress reads.

pub mod app;
pub mod config;
pub mod readiness;
pub mod reply;
pub mod routes;
pub mod serve;
pub mod slack;
