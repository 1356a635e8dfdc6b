//! OTLP push (http/protobuf, OpenTelemetry SDK): with `OTEL_EXPORTER_OTLP_ENDPOINT` set, the
//! process's metrics and spans also go to an OpenTelemetry collector, for deployments where
//! nothing scrapes `/metrics`. Unset, nothing here runs: no provider, no exporter thread.
//!
//! The SDK reads the standard variables itself: `OTEL_EXPORTER_OTLP_ENDPOINT` (the base URL;
//! `/v1/metrics` and `/v1/traces` are appended), `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` /
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (full URLs, each enough to turn its signal on;
//! `OTEL_METRICS_EXPORTER=none` / `OTEL_TRACES_EXPORTER=none` turn one off),
//! `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_METRIC_EXPORT_INTERVAL`
//! (ms, default 60 000), `OTEL_BSP_*` and `OTEL_RESOURCE_ATTRIBUTES`. `OTEL_SERVICE_NAME`
//! defaults to the binary's name (`chatops-ingress`, `chatops-runner`).
//!
//! Export never holds up a command: spans wait in the batch processor's bounded queue (dropped
//! when it is full) and metrics are read on an interval, each on an SDK thread. A collector that
//! is down costs one error line per export (the SDK's, without the endpoint or headers).

use super::otlp_http::RuntimeClient;
use crate::config::EnvSource;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{MetricExporter, SpanExporter, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// What the environment asks for, read once at start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OtlpSettings {
    /// Push metrics (`OTEL_EXPORTER_OTLP_ENDPOINT` or `…_METRICS_ENDPOINT` set).
    pub metrics: bool,
    /// Push spans (`OTEL_EXPORTER_OTLP_ENDPOINT` or `…_TRACES_ENDPOINT` set).
    pub traces: bool,
    /// `OTEL_SERVICE_NAME`, else the binary's name.
    pub service_name: String,
    /// `OTEL_METRIC_EXPORT_INTERVAL` (ms; 60 s when unset or not a number): how often the SDK
    /// pushes metrics, and how often the runner samples what is only sampled on a scrape
    /// (the queue depth) while it pushes.
    pub metric_interval: Duration,
}

/// `OTEL_METRIC_EXPORT_INTERVAL`'s default (the OpenTelemetry specification's).
const DEFAULT_METRIC_INTERVAL: Duration = Duration::from_secs(60);

impl OtlpSettings {
    /// Reads the settings from `env`; `OTEL_SDK_DISABLED=true` turns both signals off,
    /// `OTEL_METRICS_EXPORTER=none` / `OTEL_TRACES_EXPORTER=none` one of them.
    pub fn from_env(default_service: &str, env: &impl EnvSource) -> Self {
        let var = |name: &str| env.get(name);
        let set = |name: &str| var(name).is_some_and(|v| !v.trim().is_empty());
        let disabled = var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim() == "true");
        let base = set("OTEL_EXPORTER_OTLP_ENDPOINT");
        let none = |name: &str| var(name).is_some_and(|v| v.trim() == "none");
        OtlpSettings {
            metrics: !disabled
                && !none("OTEL_METRICS_EXPORTER")
                && (base || set("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")),
            traces: !disabled
                && !none("OTEL_TRACES_EXPORTER")
                && (base || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")),
            service_name: var("OTEL_SERVICE_NAME")
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| default_service.to_owned()),
            metric_interval: var("OTEL_METRIC_EXPORT_INTERVAL")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|ms| *ms > 0)
                .map_or(DEFAULT_METRIC_INTERVAL, Duration::from_millis),
        }
    }
}

/// The running providers; [`Otlp::shutdown`] sends what is left.
pub struct Otlp {
    meters: Option<SdkMeterProvider>,
    tracers: Option<SdkTracerProvider>,
    metric_interval: Duration,
}

/// The meter the metrics' OTLP instruments come from, once [`start`] has set it.
static METER_PROVIDER: OnceLock<SdkMeterProvider> = OnceLock::new();

/// The meter provider when metrics are pushed, for [`super::metrics`] (`None`: OTLP is off).
pub(crate) fn meter_provider() -> Option<&'static SdkMeterProvider> {
    METER_PROVIDER.get()
}

/// What [`start`] started.
pub struct Started {
    pub otlp: Otlp,
    /// For the tracing layer, when spans are pushed.
    pub tracer: Option<SdkTracer>,
    /// Why a signal is not pushed although asked for, to log once logging is up.
    pub problems: Vec<String>,
}

/// Starts the exporters `settings` asks for (none on a bad setting: see
/// [`Started::problems`]). Call inside the Tokio runtime: exports are sent on it.
pub fn start(settings: &OtlpSettings) -> Started {
    let mut started = Started {
        otlp: Otlp {
            meters: None,
            tracers: None,
            metric_interval: settings.metric_interval,
        },
        tracer: None,
        problems: Vec::new(),
    };
    if !settings.metrics && !settings.traces {
        return started;
    }
    let client = match RuntimeClient::new() {
        Ok(client) => Arc::new(client),
        Err(e) => {
            started.problems.push(format!("OTLP export is off: {e}"));
            return started;
        }
    };
    let resource = Resource::builder()
        .with_service_name(settings.service_name.clone())
        .build();
    if settings.metrics {
        match MetricExporter::builder()
            .with_http()
            .with_shared_http_client(client.clone())
            .build()
        {
            Ok(exporter) => {
                let provider = SdkMeterProvider::builder()
                    .with_resource(resource.clone())
                    .with_periodic_exporter(exporter)
                    .build();
                let _ = METER_PROVIDER.set(provider.clone());
                started.otlp.meters = Some(provider);
            }
            Err(e) => started.problems.push(format!("OTLP metrics are off: {e}")),
        }
    }
    if settings.traces {
        match SpanExporter::builder()
            .with_http()
            .with_shared_http_client(client)
            .build()
        {
            Ok(exporter) => {
                let provider = SdkTracerProvider::builder()
                    .with_resource(resource)
                    .with_batch_exporter(exporter)
                    .build();
                started.tracer = Some(provider.tracer("chatops"));
                started.otlp.tracers = Some(provider);
            }
            Err(e) => started.problems.push(format!("OTLP traces are off: {e}")),
        }
    }
    started
}

/// How long [`Otlp::shutdown`] waits for the last export.
const LAST_EXPORT: Duration = Duration::from_secs(3);

impl Otlp {
    /// How often metrics are pushed; `None` when they are not.
    pub fn metrics_pushed_every(&self) -> Option<Duration> {
        self.meters.as_ref().map(|_| self.metric_interval)
    }

    /// Sends what is still queued, waiting at most a few seconds: a collector that does not
    /// answer does not hold up the exit.
    pub async fn shutdown(self) {
        let (done, all_done) = tokio::sync::mpsc::channel::<()>(2);
        let mut pending = 0;
        // The SDK blocks its caller until the export ends: on threads of their own, which the
        // process does not wait for when it exits.
        if let Some(tracers) = self.tracers {
            pending += spawn_stop(done.clone(), move || {
                tracers.shutdown_with_timeout(LAST_EXPORT)
            });
        }
        if let Some(meters) = self.meters {
            pending += spawn_stop(done, move || meters.shutdown_with_timeout(LAST_EXPORT));
        }
        let mut all_done = all_done;
        let _ = tokio::time::timeout(LAST_EXPORT, async {
            for _ in 0..pending {
                all_done.recv().await;
            }
        })
        .await;
    }
}

/// Runs `stop` on a detached thread that reports to `done`; 1 when it started, else 0.
fn spawn_stop(
    done: tokio::sync::mpsc::Sender<()>,
    stop: impl FnOnce() -> opentelemetry_sdk::error::OTelSdkResult + Send + 'static,
) -> usize {
    let started = std::thread::Builder::new()
        .name("otlp-shutdown".into())
        .spawn(move || {
            if let Err(e) = stop() {
                tracing::warn!("OTLP: the last export did not go out: {e}");
            }
            let _ = done.try_send(());
        });
    usize::from(started.is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> OtlpSettings {
        let vars: HashMap<&str, &str> = vars.iter().copied().collect();
        OtlpSettings::from_env("chatops-ingress", &vars)
    }

    #[test]
    fn nothing_is_pushed_without_an_endpoint() {
        assert_eq!(
            settings(&[
                ("OTEL_SERVICE_NAME", "x"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", " ")
            ]),
            OtlpSettings {
                metrics: false,
                traces: false,
                service_name: "x".into(),
                metric_interval: DEFAULT_METRIC_INTERVAL,
            }
        );
    }

    #[test]
    fn the_base_endpoint_turns_on_both_signals_and_a_signal_endpoint_its_own() {
        let both = settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")]);
        assert!(both.metrics && both.traces);
        assert_eq!(both.service_name, "chatops-ingress");
        let traces = settings(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c/v1/traces")]);
        assert!(traces.traces && !traces.metrics);
        let off = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_SDK_DISABLED", "true"),
        ]);
        assert!(!off.metrics && !off.traces);
        let traces_only = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_METRICS_EXPORTER", "none"),
        ]);
        assert!(traces_only.traces && !traces_only.metrics);
    }
}
