//! An OTLP/HTTP receiver test double: what a collector (Container Apps' OpenTelemetry agent,
//! the OpenTelemetry Collector) would be to the services. It accepts `POST /v1/metrics` and
//! `POST /v1/traces` with protobuf bodies, decodes them with `opentelemetry-proto` and keeps
//! what they carried: metric data points and spans, each with its resource's `service.name`.
//! [`Blackhole`] plays a collector that accepts connections and never answers.

#![allow(clippy::expect_used)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One span as received.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub service: String,
    pub name: String,
    /// Lower-case hex, as in a `traceparent`.
    pub trace_id: String,
    pub attributes: BTreeMap<String, String>,
}

/// One sum or gauge data point as received (histograms: their count).
#[derive(Debug, Clone)]
pub struct ReceivedPoint {
    pub service: String,
    pub metric: String,
    pub attributes: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Default)]
struct Received {
    spans: Vec<ReceivedSpan>,
    points: Vec<ReceivedPoint>,
    /// Bodies that were not OTLP protobuf, or sent without its content type.
    malformed: usize,
}

/// See the module doc. Stops with the test.
pub struct OtlpReceiver {
    addr: std::net::SocketAddr,
    received: Arc<Mutex<Received>>,
    task: tokio::task::JoinHandle<()>,
}

impl OtlpReceiver {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the OTLP receiver");
        let addr = listener.local_addr().expect("its address");
        let received = Arc::new(Mutex::new(Received::default()));
        let app = axum::Router::new()
            .route("/v1/metrics", post(metrics))
            .route("/v1/traces", post(traces))
            .with_state(received.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("OTLP receiver");
        });
        OtlpReceiver {
            addr,
            received,
            task,
        }
    }

    /// The value for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.received.lock().expect("lock").spans.clone()
    }

    pub fn points(&self) -> Vec<ReceivedPoint> {
        self.received.lock().expect("lock").points.clone()
    }

    pub fn malformed(&self) -> usize {
        self.received.lock().expect("lock").malformed
    }

    /// The first span `matches` accepts, waiting up to `within` for it.
    pub async fn wait_for_span(
        &self,
        matches: impl Fn(&ReceivedSpan) -> bool,
        within: Duration,
    ) -> ReceivedSpan {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(span) = self.spans().into_iter().find(|s| matches(s)) {
                return span;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no such span within {within:?}; received: {:#?}",
                self.spans()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The latest data point `matches` accepts, once one has `value >= at_least`, waiting up to
    /// `within` (cumulative metrics are sent again every interval).
    pub async fn wait_for_point(
        &self,
        matches: impl Fn(&ReceivedPoint) -> bool,
        at_least: f64,
        within: Duration,
    ) -> ReceivedPoint {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let latest = self.points().into_iter().rev().find(|p| matches(p));
            if let Some(point) = latest.filter(|p| p.value >= at_least) {
                return point;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no such data point within {within:?}; received: {:#?}",
                self.points()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn is_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/x-protobuf")
}

fn protobuf(body: Vec<u8>) -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        body,
    )
}

async fn metrics(
    State(received): State<Arc<Mutex<Received>>>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let request = match ExportMetricsServiceRequest::decode(body) {
        Ok(request) if is_protobuf(&headers) => request,
        _ => {
            received.lock().expect("lock").malformed += 1;
            return StatusCode::BAD_REQUEST.into_response();
        }
    };
    let mut points = Vec::new();
    for resource in request.resource_metrics {
        let service = service_name(resource.resource.as_ref());
        for scope in resource.scope_metrics {
            for m in scope.metrics {
                let mut push = |attributes: &[KeyValue], value: f64| {
                    points.push(ReceivedPoint {
                        service: service.clone(),
                        metric: m.name.clone(),
                        attributes: attribute_map(attributes),
                        value,
                    });
                };
                match &m.data {
                    Some(metric::Data::Sum(sum)) => {
                        for p in &sum.data_points {
                            push(&p.attributes, number(p.value.as_ref()));
                        }
                    }
                    Some(metric::Data::Gauge(gauge)) => {
                        for p in &gauge.data_points {
                            push(&p.attributes, number(p.value.as_ref()));
                        }
                    }
                    Some(metric::Data::Histogram(histogram)) => {
                        for p in &histogram.data_points {
                            push(&p.attributes, p.count as f64);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    received.lock().expect("lock").points.extend(points);
    protobuf(ExportMetricsServiceResponse::default().encode_to_vec()).into_response()
}

async fn traces(
    State(received): State<Arc<Mutex<Received>>>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let request = match ExportTraceServiceRequest::decode(body) {
        Ok(request) if is_protobuf(&headers) => request,
        _ => {
            received.lock().expect("lock").malformed += 1;
            return StatusCode::BAD_REQUEST.into_response();
        }
    };
    let mut spans = Vec::new();
    for resource in request.resource_spans {
        let service = service_name(resource.resource.as_ref());
        for scope in resource.scope_spans {
            for span in scope.spans {
                spans.push(ReceivedSpan {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex::encode(&span.trace_id),
                    attributes: attribute_map(&span.attributes),
                });
            }
        }
    }
    received.lock().expect("lock").spans.extend(spans);
    protobuf(ExportTraceServiceResponse::default().encode_to_vec()).into_response()
}

fn number(value: Option<&number_data_point::Value>) -> f64 {
    match value {
        Some(number_data_point::Value::AsInt(v)) => *v as f64,
        Some(number_data_point::Value::AsDouble(v)) => *v,
        None => f64::NAN,
    }
}

fn service_name(resource: Option<&Resource>) -> String {
    resource
        .map(|r| attribute_map(&r.attributes))
        .and_then(|mut a| a.remove("service.name"))
        .unwrap_or_default()
}

fn attribute_map(attributes: &[KeyValue]) -> BTreeMap<String, String> {
    attributes
        .iter()
        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
        .collect()
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

/// A collector that is down the worst way: it takes connections and never answers.
pub struct Blackhole {
    addr: std::net::SocketAddr,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Blackhole {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the blackhole");
        let addr = listener.local_addr().expect("its address");
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                held.push(socket);
            }
        });
        Blackhole {
            addr,
            connections,
            task,
        }
    }

    /// The value for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections taken so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        self.task.abort();
    }
}
