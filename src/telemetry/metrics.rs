//! Metrics: OpenTelemetry instruments exported as Prometheus text.
//!
//! Names, types, labels and buckets are exactly those of CONTRACT.md (no
//! `otel_scope_*` labels, no `target_info`, no unit suffixes added), and they
//! live only in this file. Counters are *observable*: they read the atomics
//! in [`super::stats`] at scrape time, so counting costs the hot path one
//! relaxed add. Histograms are recorded once per committed batch (batch
//! size) and once per committed message (latencies), never per row.
//! Label values are bounded: stage and sink names from the pipeline file,
//! reason codes, and topic kinds the pipeline routes (anything else is
//! `other`); never tenant or device ids.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use opentelemetry::metrics::{Histogram, Meter, MeterProvider};
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::SdkMeterProvider;

use crate::envelope::{Body, Envelope, Reason};
use crate::sink::postgres::kind::SinkKind;

use super::health::Health;
use super::queue::QueueProbe;
use super::stats::{get, SinkStats, SourceStats, StageStats};

/// Buckets of `ingest_batch_size`, in rows (CONTRACT.md: 1…10000).
pub const BATCH_BUCKETS: [f64; 13] = [
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0,
];

/// Buckets of the latency histograms, in seconds (CONTRACT.md: 0.001…10).
pub const LATENCY_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// An observable instrument kept alive for as long as the metrics are.
type Held = Box<dyn std::any::Any + Send + Sync>;

/// Why the metrics could not be set up or rendered.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The exporter could not be built.
    #[error("building the Prometheus exporter: {0}")]
    Exporter(String),
    /// The registry could not be encoded.
    #[error("encoding metrics: {0}")]
    Encode(String),
}

/// One pipeline's metric instruments and the registry they export to.
pub struct Metrics {
    registry: prometheus::Registry,
    provider: SdkMeterProvider,
    meter: Meter,
    batch_size: Histogram<u64>,
    latency: Histogram<f64>,
    pipeline_latency: Histogram<f64>,
    /// Observable instruments stay registered while held.
    observers: Mutex<Vec<Held>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// What the observable instruments read: everything a running pipeline counts.
#[derive(Debug)]
pub struct PipelineView {
    /// The source's counters.
    pub source: Arc<SourceStats>,
    /// `(stage name, counters)`.
    pub stages: Vec<(String, Arc<StageStats>)>,
    /// `(sink name, kind, counters)`.
    pub sinks: Vec<(String, SinkKind, Arc<SinkStats>)>,
    /// Every stage's and sink's input queue.
    pub queues: Vec<QueueProbe>,
    /// Broker and database state.
    pub health: Arc<Health>,
}

/// The per-sink histogram handles, with the `sink` label built once.
#[derive(Clone)]
pub struct SinkMetrics {
    batch_size: Histogram<u64>,
    latency: Histogram<f64>,
    pipeline_latency: Histogram<f64>,
    labels: [KeyValue; 1],
    device_latency: bool,
}

impl std::fmt::Debug for SinkMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkMetrics")
            .field("labels", &self.labels)
            .finish()
    }
}

impl SinkMetrics {
    /// Records one committed batch: its size, and for each message the time
    /// since it was received and (telemetry) since its device timestamp.
    pub fn committed(&self, rows: u64, envelopes: &[Envelope]) {
        self.batch_size.record(rows, &self.labels);
        let now = Utc::now();
        for envelope in envelopes {
            let received = (now - envelope.received_at).to_std().unwrap_or_default();
            self.pipeline_latency.record(received.as_secs_f64(), &[]);
            if self.device_latency {
                if let Body::Measures(rows) = &envelope.body {
                    if let Some(row) = rows.first() {
                        let age = (now - row.ts).to_std().unwrap_or_default();
                        self.latency.record(age.as_secs_f64(), &[]);
                    }
                }
            }
        }
    }
}

impl Metrics {
    /// A fresh registry and meter provider (one per pipeline run, so tests
    /// running several pipelines in one process count separately).
    pub fn new() -> Result<Metrics, MetricsError> {
        let registry = prometheus::Registry::new();
        let exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .without_units()
            .without_target_info()
            .scope_info_enabled(false)
            .build()
            .map_err(|e| MetricsError::Exporter(e.to_string()))?;
        let provider = SdkMeterProvider::builder().with_reader(exporter).build();
        let meter = provider.meter("traksense_ingest");
        let batch_size = meter
            .u64_histogram("ingest_batch_size")
            .with_description("Rows per committed batch")
            .with_boundaries(BATCH_BUCKETS.to_vec())
            .build();
        let latency = meter
            .f64_histogram("ingest_latency_seconds")
            .with_description("Device timestamp to commit, per telemetry message")
            .with_boundaries(LATENCY_BUCKETS.to_vec())
            .build();
        let pipeline_latency = meter
            .f64_histogram("ingest_pipeline_latency_seconds")
            .with_description("Receive from the broker to commit, per message")
            .with_boundaries(LATENCY_BUCKETS.to_vec())
            .build();
        Ok(Metrics {
            registry,
            provider,
            meter,
            batch_size,
            latency,
            pipeline_latency,
            observers: Mutex::new(Vec::new()),
        })
    }

    /// The histogram handles for one sink.
    pub fn sink(&self, name: &str, kind: SinkKind) -> SinkMetrics {
        SinkMetrics {
            batch_size: self.batch_size.clone(),
            latency: self.latency.clone(),
            pipeline_latency: self.pipeline_latency.clone(),
            labels: [KeyValue::new("sink", name.to_string())],
            device_latency: kind == SinkKind::Timeseries,
        }
    }

    /// Registers the observable instruments that read `view` at scrape time.
    pub fn observe(&self, view: Arc<PipelineView>) {
        let label = |k: &'static str, v: &str| vec![KeyValue::new(k, v.to_string())];
        let sinks_of = |v: &PipelineView, kind: SinkKind| -> Vec<Arc<SinkStats>> {
            v.sinks
                .iter()
                .filter(|(_, k, _)| *k == kind)
                .map(|(_, _, s)| s.clone())
                .collect()
        };
        let mut held = Vec::new();
        held.push(self.counter(
            "ingest_messages",
            "Messages received, by topic kind",
            &view,
            move |v| {
                v.source
                    .type_counts()
                    .into_iter()
                    .map(|(kind, n)| (n, label("type", kind)))
                    .collect()
            },
        ));
        held.push(self.counter(
            "ingest_points",
            "Points committed to ts_measure",
            &view,
            move |v| {
                let n = sinks_of(v, SinkKind::Timeseries)
                    .iter()
                    .map(|s| get(&s.rows))
                    .sum();
                vec![(n, vec![])]
            },
        ));
        held.push(self.counter(
            "ingest_errors",
            "Dead letters committed, by reason",
            &view,
            move |v| {
                let dead = sinks_of(v, SinkKind::DeadLetter);
                Reason::ALL
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        (
                            dead.iter().map(|s| get(&s.by_reason[i])).sum(),
                            label("reason", r.as_str()),
                        )
                    })
                    .collect()
            },
        ));
        held.push(self.gauge(
            "ingest_queue_size",
            "Envelopes waiting in each stage's and sink's input",
            &view,
            move |v| {
                v.queues
                    .iter()
                    .map(|q| (q.len() as i64, label("stage", &q.name)))
                    .collect()
            },
        ));
        type StageField = fn(&StageStats) -> &AtomicU64;
        let stage_counters: [(&'static str, &'static str, StageField); 3] = [
            (
                "ingest_stage_received",
                "Envelopes taken by each stage",
                |s| &s.received,
            ),
            (
                "ingest_stage_sent",
                "Envelopes passed on by each stage",
                |s| &s.sent,
            ),
            (
                "ingest_stage_rejected",
                "Envelopes each stage rejected",
                |s| &s.rejected,
            ),
        ];
        for (name, description, field) in stage_counters {
            held.push(self.counter(name, description, &view, move |v| {
                v.stages
                    .iter()
                    .map(|(stage, s)| (get(field(s)), label("stage", stage)))
                    .collect()
            }));
        }
        type SinkField = fn(&SinkStats) -> &AtomicU64;
        let sink_counters: [(&'static str, &'static str, SinkField); 4] = [
            (
                "ingest_sink_messages",
                "Messages committed by each sink",
                |s| &s.messages,
            ),
            ("ingest_sink_rows", "Rows committed by each sink", |s| {
                &s.rows
            }),
            (
                "ingest_db_retries",
                "Writes retried after a transient database error",
                |s| &s.retries,
            ),
            (
                "ingest_db_dedup_fallbacks",
                "Batches written again with ON CONFLICT DO NOTHING after meeting stored rows",
                |s| &s.dedup_fallbacks,
            ),
        ];
        for (name, description, field) in sink_counters {
            held.push(self.counter(name, description, &view, move |v| {
                v.sinks
                    .iter()
                    .map(|(sink, _, s)| (get(field(s)), label("sink", sink)))
                    .collect()
            }));
        }
        held.push(self.counter(
            "ingest_acknowledged",
            "Messages acknowledged to the broker (after commit)",
            &view,
            |v| vec![(get(&v.source.acked), vec![])],
        ));
        held.push(self.counter(
            "ingest_mqtt_reconnects",
            "Reconnections to the broker after the first connection",
            &view,
            |v| vec![(get(&v.source.connects).saturating_sub(1), vec![])],
        ));
        held.push(self.gauge(
            "ingest_mqtt_connected",
            "1 while the broker session is up",
            &view,
            |v| vec![(i64::from(v.health.ready()), vec![])],
        ));
        held.push(self.gauge(
            "ingest_db_up",
            "1 while the last database probe succeeded",
            &view,
            |v| vec![(i64::from(v.health.db_up.load(Ordering::Relaxed)), vec![])],
        ));
        self.observers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(held);
    }

    /// An observable counter whose points `read` computes from `view`.
    fn counter<F>(
        &self,
        name: &'static str,
        description: &'static str,
        view: &Arc<PipelineView>,
        read: F,
    ) -> Held
    where
        F: Fn(&PipelineView) -> Vec<(u64, Vec<KeyValue>)> + Send + Sync + 'static,
    {
        let view = view.clone();
        Box::new(
            self.meter
                .u64_observable_counter(name)
                .with_description(description)
                .with_callback(move |o| {
                    read(&view)
                        .iter()
                        .for_each(|(n, labels)| o.observe(*n, labels))
                })
                .build(),
        )
    }

    /// An observable gauge whose points `read` computes from `view`.
    fn gauge<F>(
        &self,
        name: &'static str,
        description: &'static str,
        view: &Arc<PipelineView>,
        read: F,
    ) -> Held
    where
        F: Fn(&PipelineView) -> Vec<(i64, Vec<KeyValue>)> + Send + Sync + 'static,
    {
        let view = view.clone();
        Box::new(
            self.meter
                .i64_observable_gauge(name)
                .with_description(description)
                .with_callback(move |o| {
                    read(&view)
                        .iter()
                        .for_each(|(n, labels)| o.observe(*n, labels))
                })
                .build(),
        )
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Result<String, MetricsError> {
        prometheus::TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .map_err(|e| MetricsError::Encode(e.to_string()))
    }
}

impl Drop for Metrics {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}
