//! What metrics cost per message: times `SinkMetrics::committed` (the only
//! per-message metric work; counters are read from atomics at scrape time)
//! on batches of telemetry envelopes, and prints nanoseconds per message.
//!
//! `cargo run --release --example metrics_cost`

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use chrono::Utc;
use traksense_ingest::delivery::DeliveryToken;
use traksense_ingest::envelope::{Body, Captures, Envelope, MeasureRow, PointValue};
use traksense_ingest::sink::postgres::kind::SinkKind;
use traksense_ingest::telemetry::metrics::Metrics;

fn envelope(i: usize) -> Envelope {
    Envelope {
        topic: Arc::from("traksense/t/s/d/telem"),
        captures: Captures::default(),
        payload: Bytes::new(),
        received_at: Utc::now(),
        body: Body::Measures(vec![MeasureRow {
            point: "temp".into(),
            ts: Utc::now(),
            value: PointValue::Num(i as f64),
            unit: None,
            meta: None,
        }]),
        token: DeliveryToken::detached(),
    }
}

fn main() {
    let metrics = Metrics::new().expect("metrics");
    let sink = metrics.sink("ts_measure", SinkKind::Timeseries);
    let batch: Vec<Envelope> = (0..500).map(envelope).collect();
    let rounds = 4_000;
    for _ in 0..100 {
        sink.committed(500, &batch); // warm up
    }
    let start = Instant::now();
    for _ in 0..rounds {
        sink.committed(500, &batch);
    }
    let elapsed = start.elapsed();
    let messages = rounds * batch.len();
    let per_message = elapsed.as_nanos() as f64 / messages as f64;
    println!("{messages} messages in {elapsed:?}: {per_message:.0} ns of metric work per message");
    for rate in [10_000.0, 50_000.0, 100_000.0] {
        println!(
            "at {rate:>7} messages/s that is {:.2} % of one core",
            per_message * rate / 1e9 * 100.0
        );
    }
    let text = metrics.render().expect("render");
    assert!(text.contains("ingest_pipeline_latency_seconds_count"));
}
