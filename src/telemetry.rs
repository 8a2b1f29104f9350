//! Counters each stage and sink updates, and tracing set-up.
//!
//! This is the metrics hook: every stage and sink owns one `Arc` of these
//! plain atomic counters (no lock, no allocation per message). The
//! Prometheus/OpenTelemetry exporter reads them; the runner logs their
//! totals on stop.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Per-stage counters.
#[derive(Debug, Default)]
pub struct StageStats {
    /// Envelopes taken from the input channel.
    pub received: AtomicU64,
    /// Envelopes passed on.
    pub sent: AtomicU64,
    /// Envelopes turned into dead letters.
    pub rejected: AtomicU64,
}

/// Per-sink counters.
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Messages committed.
    pub messages: AtomicU64,
    /// Rows committed.
    pub rows: AtomicU64,
    /// Batches committed.
    pub batches: AtomicU64,
    /// Writes retried after a transient error.
    pub retries: AtomicU64,
    /// Messages the database refused (sent on as `db_rejected`).
    pub db_rejected: AtomicU64,
}

/// Per-source counters.
#[derive(Debug, Default)]
pub struct SourceStats {
    /// Messages received from the broker.
    pub received: AtomicU64,
    /// Messages acknowledged to the broker.
    pub acked: AtomicU64,
    /// Connections established (the first one included).
    pub connects: AtomicU64,
}

/// What readiness depends on: the broker session and the subscriptions.
/// The source keeps it current; `/readyz` and tests read it.
#[derive(Debug, Default)]
pub struct Health {
    /// Connected to the broker (CONNACK received, connection not lost since).
    pub broker_up: AtomicBool,
    /// The broker granted our subscriptions on this session.
    pub subscribed: AtomicBool,
}

impl Health {
    /// Whether messages published now will reach the pipeline.
    pub fn ready(&self) -> bool {
        self.broker_up.load(Ordering::Relaxed) && self.subscribed.load(Ordering::Relaxed)
    }

    /// Records the broker connection going up or down.
    pub fn set_broker_up(&self, up: bool) {
        self.broker_up.store(up, Ordering::Relaxed);
    }

    /// Records the subscriptions being granted (or lost with the session).
    pub fn set_subscribed(&self, subscribed: bool) {
        self.subscribed.store(subscribed, Ordering::Relaxed);
    }
}

/// Adds `n` to a counter.
pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Reads a counter.
pub fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global tracing subscriber; level from `RUST_LOG` (default
/// `info`). Safe to call once per process.
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    if let Err(e) = result {
        eprintln!("tracing already initialised: {e}");
    }
}
