//! One place to set up logging for a service binary; [`metrics`] holds the Prometheus metrics,
//! [`trace`] the W3C trace context a job message carries, [`otlp`] the optional OTLP push of
//! both (spans through a `tracing-opentelemetry` layer, only when an endpoint is set).
//!
//! `RUST_LOG` filters (default `info`, with the Azure SDK's own per-request lines at `warn`);
//! `CHATOPS_LOG_FORMAT=json` switches to one JSON object per line for log collectors. Colour
//! only at a terminal, never with `NO_COLOR`. Lines about a job carry its `job_id` field.
//!
//! A log line is one line: in the text format, control characters in the message and in field
//! values (a newline in a script's output, a terminal escape) are written as escapes (`\n`,
//! `\u{1b}`), so nothing logged can forge a line of its own. JSON escapes them already.

mod instruments;
pub mod metrics;
pub mod otlp;
mod otlp_http;
pub mod trace;

use crate::config::{EnvSource, ProcessEnv};
use otlp::{Otlp, OtlpSettings};

use std::io::IsTerminal;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{Writer, debug_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// The filter when `RUST_LOG` is unset: our logs at info, the SDK's retries only when they fail,
/// OpenTelemetry's own lines only when an export fails.
const DEFAULT_FILTER: &str = "info,azure_core=warn,typespec_client_core=warn,\
azure_storage_queue=warn,azure_identity=warn,opentelemetry=warn";

/// Installs the global subscriber and, when the environment asks for it, the OTLP export
/// (`service` names the process unless `OTEL_SERVICE_NAME` does). Call once, first thing in
/// `main`, inside the Tokio runtime; [`Otlp::shutdown`] before exiting sends what is left.
pub fn init(service: &str) -> Otlp {
    let started = otlp::start(&OtlpSettings::from_env(service, &ProcessEnv));
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
    let lines = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_ansi(ansi);
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = vec![if json {
        lines.json().flatten_event(true).boxed()
    } else {
        lines.fmt_fields(text_fields()).boxed()
    }];
    if let Some(tracer) = started.tracer {
        layers.push(tracing_opentelemetry::layer().with_tracer(tracer).boxed());
    }
    // A second init (tests that start several apps in one process) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(layers.with_filter(filter))
        .try_init();
    if let Some(e) = bad_filter {
        tracing::warn!("RUST_LOG is not a valid filter ({e}); using the default");
    }
    if !json && !format.is_empty() && !format.eq_ignore_ascii_case("text") {
        tracing::warn!("CHATOPS_LOG_FORMAT is `{format}`; use `json` or `text` (using text)");
    }
    for problem in started.problems {
        tracing::warn!("{problem}");
    }
    if errors_capture_backtraces(&ProcessEnv) {
        tracing::warn!(
            "RUST_BACKTRACE is set and RUST_LIB_BACKTRACE is not: every Storage request captures a backtrace (the Azure SDK builds an error for each header it finds missing), which costs throughput; set RUST_LIB_BACKTRACE=0 to keep backtraces for panics only"
        );
    }
    started.otlp
}

/// Whether every error built with a backtrace (`std::backtrace::Backtrace::capture`) captures
/// one: when `RUST_LIB_BACKTRACE` is unset, std follows `RUST_BACKTRACE`. The Azure SDK
/// (`typespec` 1.1) builds such an error on every request, for a header lookup that expects the
/// header to be missing (`Headers::get_optional_str`), so a `RUST_BACKTRACE=1` left in a
/// container for panics walks the stack on every queue and blob request. The images set
/// `RUST_LIB_BACKTRACE=0`; the services warn when it is missing.
pub fn errors_capture_backtraces(env: &impl EnvSource) -> bool {
    let on = |name: &str| env.get(name).is_some_and(|v| v != "0");
    match env.get("RUST_LIB_BACKTRACE") {
        Some(_) => on("RUST_LIB_BACKTRACE"),
        None => on("RUST_BACKTRACE"),
    }
}

/// The text format's fields: `message` as is, others `name=value`, control characters escaped.
fn text_fields() -> impl for<'w> FormatFields<'w> + Send + Sync + 'static {
    debug_fn(
        |writer: &mut Writer<'_>, field: &tracing::field::Field, value: &dyn std::fmt::Debug| {
            let text = format!("{value:?}");
            if field.name() != "message" {
                write!(writer, "{}=", field.name())?;
            }
            write_escaped(writer, &text)
        },
    )
    .delimited(" ")
}

/// Writes `text` with control characters as escapes: `\n`, `\r`, `\t`, else `\u{…}`.
fn write_escaped(writer: &mut impl std::fmt::Write, text: &str) -> std::fmt::Result {
    for c in text.chars() {
        match c {
            '\n' => writer.write_str("\\n")?,
            '\r' => writer.write_str("\\r")?,
            '\t' => writer.write_str("\\t")?,
            c if c.is_control() => write!(writer, "\\u{{{:x}}}", u32::from(c))?,
            c => writer.write_char(c)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    #[test]
    fn backtraces_are_captured_per_error_only_when_std_would_capture_them() {
        let env = |pairs: &[(&'static str, &'static str)]| -> HashMap<&str, &str> {
            pairs.iter().copied().collect()
        };
        assert!(!errors_capture_backtraces(&env(&[])));
        assert!(!errors_capture_backtraces(&env(&[("RUST_BACKTRACE", "0")])));
        assert!(errors_capture_backtraces(&env(&[("RUST_BACKTRACE", "1")])));
        assert!(errors_capture_backtraces(&env(&[(
            "RUST_BACKTRACE",
            "full"
        )])));
        assert!(!errors_capture_backtraces(&env(&[
            ("RUST_BACKTRACE", "1"),
            ("RUST_LIB_BACKTRACE", "0")
        ])));
        assert!(errors_capture_backtraces(&env(&[(
            "RUST_LIB_BACKTRACE",
            "1"
        )])));
    }

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_text_line_cannot_be_split_or_coloured_by_what_it_logs() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_target(false)
            .fmt_fields(text_fields())
            .with_writer(move || writer.clone())
            .finish();
        let forged = "ok\n2024-01-01T00:00:00Z  INFO forged line \x1b[31mred";
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("job", job_id = "j\r1");
            let _entered = span.enter();
            tracing::info!(output = %forged, plain = forged, "script said: {forged}");
        });
        let logged = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert_eq!(logged.lines().count(), 1, "{logged}");
        assert!(
            !logged.contains('\x1b') && !logged.contains('\r'),
            "{logged}"
        );
        assert!(
            logged.contains(
                "script said: ok\\n2024-01-01T00:00:00Z  INFO forged line \\u{1b}[31mred"
            ),
            "{logged}"
        );
        assert!(
            logged.contains("output=ok\\n2024-01-01T00:00:00Z  INFO forged line \\u{1b}[31mred"),
            "{logged}"
        );
        assert!(logged.contains("job_id=\"j\\r1\""), "{logged}");
    }
}
