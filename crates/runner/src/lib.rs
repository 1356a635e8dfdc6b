//! The runner: competing consumer of the job queue. Takes a job message, re-checks it against
//! the catalog, runs it with the executor the catalog names, follows it to its end and reports
//! to Slack.
//!
//! - [`worker`]: `process_next()` and the polling loop; where a job is followed.
//! - [`executor`]: the `Executor` seam; Azure Automation (`automation` over `arm`) and `local`.
//! - [`notify`]: the `Notifier` seam; Slack `response_url`, webhook, or the log.
//! - [`metrics`]: jobs, dispatch latency and outside calls, served on `/metrics`.
//! - [`app`], [`config`]: wiring and every environment variable.
//! - [`catalog_sync`]: catalog entries from the Automation account (`chatops-runner catalog sync`).

pub mod app;
pub mod catalog_sync;
pub mod config;
pub mod executor;
pub mod metrics;
pub mod notify;
pub mod worker;
