//! Test harness for the end-to-end tests in `tests/tests/`.
//!
//! - [`azurite`]: installs (npm, into the git-ignored `.cache/azurite`) and starts a real Azurite.
//! - [`slack`]: a test server that plays Slack's `response_url` and incoming webhook endpoints.
//! - [`arm`]: a test server that plays Azure Resource Manager (Automation jobs) and the
//!   Container Apps managed-identity token endpoint.
//! - [`process`]: the service binaries as child processes.
//! - [`app`]: `TestApp`, which wires the above to an ingress and runners.
//! - [`compose`]: `docker-compose.yml` read as Compose reads it (environment, mounts, ports).
//! - [`counting`]: a blob store decorator that counts storage round trips.
//! - [`otlp`]: an OTLP/HTTP receiver (a collector's place) and a collector that never answers.

// Test code: a failed setup step should stop the test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod app;
pub mod arm;
pub mod azurite;
pub mod compose;
pub mod counting;
pub mod otlp;
pub mod process;
pub mod proxy;
pub mod shaped_queue;
pub mod slack;
