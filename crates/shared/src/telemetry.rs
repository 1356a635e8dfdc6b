//! One place to set up logging for a service binary.
//!
//! `RUST_LOG` filters (default `info`, with the Azure SDK's own per-request lines at `warn`);
//! `CHATOPS_LOG_FORMAT=json` switches to one JSON object per line for log collectors. Colour
//! only at a terminal, never with `NO_COLOR`. Lines about a job carry its `job_id` field.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// The filter when `RUST_LOG` is unset: our logs at info, the SDK's retries only when they fail.
const DEFAULT_FILTER: &str =
    "info,azure_core=warn,typespec_client_core=warn,azure_storage_queue=warn,azure_identity=warn";

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init() {
    let (filter, bad_filter) = match std::env::var("RUST_LOG") {
        Ok(value) if !value.trim().is_empty() => match EnvFilter::try_new(&value) {
            Ok(filter) => (filter, None),
            Err(e) => (EnvFilter::new(DEFAULT_FILTER), Some(e.to_string())),
        },
        _ => (EnvFilter::new(DEFAULT_FILTER), None),
    };
    let format = std::env::var("CHATOPS_LOG_FORMAT").unwrap_or_default();
    let json = format.eq_ignore_ascii_case("json");
    let ansi = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi);
    // A second init (tests that start several apps in one process) keeps the first subscriber.
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    if let Some(e) = bad_filter {
        tracing::warn!("RUST_LOG is not a valid filter ({e}); using the default");
    }
    if !json && !format.is_empty() && !format.eq_ignore_ascii_case("text") {
        tracing::warn!("CHATOPS_LOG_FORMAT is `{format}`; use `json` or `text` (using text)");
    }
}
