//! A metric in its two forms: the Prometheus series `/metrics` serves (`prometheus-client`) and,
//! only while OTLP metrics are on, the OpenTelemetry instrument of the same name that is pushed.
//! Each metric is declared once, in [`super::metrics`], with one of these; recording updates both.
//!
//! The OpenTelemetry name is the Prometheus one without its type suffix (`chatops_commands`
//! for `chatops_commands_total`), so a collector's Prometheus export gives back the same names.

use opentelemetry::KeyValue;
use opentelemetry::metrics::{self as otel, Meter, MeterProvider as _};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::atomic::AtomicU64;

/// Where each metric is registered: the Prometheus registry, and the meter when OTLP is on.
pub struct Registrar {
    pub registry: Registry,
    meter: Option<Meter>,
}

impl Registrar {
    /// Every name starts `chatops_`.
    pub fn new() -> Self {
        Registrar {
            registry: Registry::with_prefix(PREFIX),
            meter: super::otlp::meter_provider().map(|p| p.meter("chatops")),
        }
    }

    fn otel_name(name: &str) -> String {
        format!("{PREFIX}_{name}")
    }

    /// Counters by label set.
    pub fn counters<L: Labels>(&mut self, name: &'static str, help: &'static str) -> Counters<L> {
        let prom = Family::default();
        self.registry.register(name, help, prom.clone());
        let otel = self.meter.as_ref().map(|m| {
            m.u64_counter(Self::otel_name(name))
                .with_description(help)
                .build()
        });
        Counters { prom, otel }
    }

    /// One counter without labels.
    pub fn counter(&mut self, name: &'static str, help: &'static str) -> Count {
        let prom = Counter::default();
        self.registry.register(name, help, prom.clone());
        let otel = self.meter.as_ref().map(|m| {
            m.u64_counter(Self::otel_name(name))
                .with_description(help)
                .build()
        });
        Count { prom, otel }
    }

    /// Gauges by label set, set to a sampled value.
    pub fn gauges<L: Labels>(&mut self, name: &'static str, help: &'static str) -> Gauges<L> {
        let prom = Family::default();
        self.registry.register(name, help, prom.clone());
        let otel = self.meter.as_ref().map(|m| {
            m.i64_gauge(Self::otel_name(name))
                .with_description(help)
                .build()
        });
        Gauges { prom, otel }
    }

    /// One gauge set to a level that is not a count (e.g. a rate), without labels.
    pub fn level(&mut self, name: &'static str, help: &'static str) -> Level {
        let prom = Gauge::<f64, AtomicU64>::default();
        self.registry.register(name, help, prom.clone());
        let otel = self.meter.as_ref().map(|m| {
            m.f64_gauge(Self::otel_name(name))
                .with_description(help)
                .build()
        });
        Level { prom, otel }
    }

    /// One gauge that goes up and down.
    pub fn up_down(&mut self, name: &'static str, help: &'static str) -> UpDown {
        let prom = Gauge::default();
        self.registry.register(name, help, prom.clone());
        let otel = self.meter.as_ref().map(|m| {
            m.i64_up_down_counter(Self::otel_name(name))
                .with_description(help)
                .build()
        });
        UpDown { prom, otel }
    }

    /// Durations in seconds, in `buckets`.
    pub fn seconds(&mut self, name: &'static str, help: &'static str, buckets: &[f64]) -> Seconds {
        let prom = Histogram::new(buckets.iter().copied());
        self.registry.register(name, help, prom.clone());
        let otel = self.meter.as_ref().map(|m| {
            m.f64_histogram(Self::otel_name(name))
                .with_description(help)
                .with_unit("s")
                .with_boundaries(buckets.to_vec())
                .build()
        });
        Seconds { prom, otel }
    }
}

const PREFIX: &str = "chatops";

/// A label set: Prometheus labels, and the same pairs as OpenTelemetry attributes.
pub trait Labels: Clone + Debug + Hash + Eq + EncodeLabelSet + Send + Sync + 'static {
    fn attributes(&self) -> Vec<KeyValue>;
}

impl<const N: usize> Labels for [(&'static str, &'static str); N] {
    fn attributes(&self) -> Vec<KeyValue> {
        self.iter().map(|(k, v)| KeyValue::new(*k, *v)).collect()
    }
}

impl<const N: usize> Labels for [(&'static str, String); N] {
    fn attributes(&self) -> Vec<KeyValue> {
        self.iter()
            .map(|(k, v)| KeyValue::new(*k, v.clone()))
            .collect()
    }
}

/// See [`Registrar::counters`].
pub struct Counters<L> {
    prom: Family<L, Counter>,
    otel: Option<otel::Counter<u64>>,
}

impl<L: Labels> Counters<L> {
    pub fn inc(&self, labels: L) {
        if let Some(otel) = &self.otel {
            otel.add(1, &labels.attributes());
        }
        self.prom.get_or_create(&labels).inc();
    }
}

/// See [`Registrar::counter`].
pub struct Count {
    prom: Counter,
    otel: Option<otel::Counter<u64>>,
}

impl Count {
    pub fn inc(&self) {
        if let Some(otel) = &self.otel {
            otel.add(1, &[]);
        }
        self.prom.inc();
    }
}

/// See [`Registrar::gauges`].
pub struct Gauges<L> {
    prom: Family<L, Gauge>,
    otel: Option<otel::Gauge<i64>>,
}

impl<L: Labels> Gauges<L> {
    pub fn set(&self, labels: L, value: i64) {
        if let Some(otel) = &self.otel {
            otel.record(value, &labels.attributes());
        }
        self.prom.get_or_create(&labels).set(value);
    }
}

/// See [`Registrar::level`].
pub struct Level {
    prom: Gauge<f64, AtomicU64>,
    otel: Option<otel::Gauge<f64>>,
}

impl Level {
    pub fn set(&self, value: f64) {
        if let Some(otel) = &self.otel {
            otel.record(value, &[]);
        }
        self.prom.set(value);
    }
}

/// See [`Registrar::up_down`].
pub struct UpDown {
    prom: Gauge,
    otel: Option<otel::UpDownCounter<i64>>,
}

impl UpDown {
    pub fn add(&self, delta: i64) {
        if let Some(otel) = &self.otel {
            otel.add(delta, &[]);
        }
        self.prom.inc_by(delta);
    }
}

/// See [`Registrar::seconds`].
pub struct Seconds {
    prom: Histogram,
    otel: Option<otel::Histogram<f64>>,
}

impl Seconds {
    pub fn observe(&self, seconds: f64) {
        if let Some(otel) = &self.otel {
            otel.record(seconds, &[]);
        }
        self.prom.observe(seconds);
    }
}
