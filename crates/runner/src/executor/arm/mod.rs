//! The Azure Resource Manager client for Automation jobs: the only place that builds ARM URLs
//! and reads ARM answers (see `shared/reference/azure-automation.md` for the calls).
//!
//! Transient failures (network, timeouts, 5xx, 429, token errors) are retried here, a bounded
//! number of times with the shared backoff (jittered), honouring `Retry-After`. Callers see a
//! typed [`ArmError`] that keeps ARM's error code and message and never a token or a raw body.
//! Every answer is read with a bound: JSON and error bodies up to a cap, a job's output to its
//! end keeping only its tail ([`MAX_OUTPUT_TAIL`]).
//!
//! Every GET waits its turn in the process's [`ReadBudget`] (`CHATOPS_ARM_READS_PER_SECOND`),
//! which slows down further when ARM says the subscription's read budget runs low or answers
//! 429 (`budget`).
//!
//! Retrying a job's PUT is safe: the job name is chosen by the caller, so a repeated PUT whose
//! first answer was lost is refused as "already exists" and reported as
//! [`CreateResult::AlreadyExists`].

mod budget;
mod client;
mod config;
mod error;
mod model;
mod retry;
mod runbooks;
mod transport;

pub use budget::{ReadBudget, urgent};
pub use client::{ArmClient, MAX_OUTPUT_TAIL, StreamPages};
pub use config::{
    API_VERSION, ArmConfig, DEFAULT_ENDPOINT, DEFAULT_READS_PER_SECOND, DEFAULT_SCOPE,
};
pub use error::ArmError;
pub use model::{CreateResult, Job, JobStatus, StreamRecord};
pub use retry::RetryPolicy;
pub use runbooks::{RunbookInfo, RunbookParam};
