//! W3C trace context (`traceparent`) for a job: the ingress starts a trace for each command it
//! queues and carries it in the job message, so the ingress's and the runner's log lines (and
//! any tracing backend) can join one command's steps by its trace id as well as its `job_id`.
//!
//! With OTLP traces on ([`super::otlp`]), the `traceparent` is the current span's own context,
//! and the runner's job span continues it ([`continue_trace`]): one trace in the collector.

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{TraceContextExt as _, TraceFlags};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use std::collections::HashMap;
use std::fmt::Write as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The `traceparent` for a job queued from the current span: that span's context when spans
/// are exported, else a fresh one (random ids, sampled). `None` only when the system has no
/// randomness to give.
pub fn new_traceparent() -> Option<String> {
    let context = tracing::Span::current().context();
    let span = context.span();
    let current = span.span_context();
    if current.is_valid() {
        let flags = current.trace_flags() & TraceFlags::SAMPLED;
        return Some(format!(
            "00-{}-{}-{:02x}",
            current.trace_id(),
            current.span_id(),
            flags.to_u8()
        ));
    }
    random_traceparent()
}

/// Makes `span` a child of the remote span `traceparent` names, when spans are exported and it
/// is well formed; otherwise leaves `span` as it is.
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent.filter(|t| trace_id(t).is_some()) else {
        return;
    };
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let parent = TraceContextPropagator::new().extract(&carrier);
    if parent.span().span_context().is_valid() {
        // Fails only when no OpenTelemetry layer is installed: nothing to continue then.
        let _ = span.set_parent(parent);
    }
}

/// Version `00`, a random trace id and parent id, sampled (`01`).
fn random_traceparent() -> Option<String> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).ok()?;
    // All-zero ids are invalid; a random one is all zeros with probability 2^-128.
    let mut text = String::with_capacity(55);
    text.push_str("00-");
    bytes[..16].iter().for_each(|b| {
        let _ = write!(text, "{b:02x}");
    });
    text.push('-');
    bytes[16..].iter().for_each(|b| {
        let _ = write!(text, "{b:02x}");
    });
    text.push_str("-01");
    Some(text)
}

/// The trace id of a well-formed `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`), else `None`:
/// the field comes off the queue and is logged, so anything else is ignored.
pub fn trace_id(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let valid = parts.next().is_none()
        && version == "00"
        && hex(trace, 32)
        && hex(parent, 16)
        && hex(flags, 2)
        && trace.bytes().any(|b| b != b'0')
        && parent.bytes().any(|b| b != b'0');
    valid.then_some(trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_traceparent_is_well_formed_and_new_each_time() {
        let a = new_traceparent().unwrap();
        let b = random_traceparent().unwrap();
        assert_eq!(a.len(), 55, "{a}");
        assert_ne!(a, b);
        assert_eq!(trace_id(&a), Some(&a[3..35]));
    }

    #[test]
    fn anything_but_a_version_00_traceparent_has_no_trace_id() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(trace_id(good), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-4bf92f3577b34da6a3ce929d0e0e47\n6-00f067aa0ba902b7-01",
        ] {
            assert_eq!(trace_id(bad), None, "{bad:?}");
        }
    }
}
