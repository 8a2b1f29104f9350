//! [`Telemetry`]: what a caller hands the runner so it can observe it —
//! health flags, the metrics registry, and the address `/metrics` is served
//! on once bound (port 0 picks a free one, as tests do).

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use super::health::Health;
use super::metrics::{Metrics, MetricsError};

/// Observability of one pipeline run.
#[derive(Debug)]
pub struct Telemetry {
    /// Readiness flags, kept current by the source and a database probe.
    pub health: Arc<Health>,
    /// Metric instruments and their Prometheus registry.
    pub metrics: Arc<Metrics>,
    addr: OnceLock<SocketAddr>,
}

impl Telemetry {
    /// Fresh health flags and a fresh metrics registry.
    pub fn new() -> Result<Arc<Telemetry>, MetricsError> {
        Ok(Arc::new(Telemetry {
            health: Arc::new(Health::default()),
            metrics: Arc::new(Metrics::new()?),
            addr: OnceLock::new(),
        }))
    }

    /// Where `/metrics`, `/healthz` and `/readyz` are served, once bound.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr.get().copied()
    }

    /// Records the bound address (the first one wins).
    pub fn set_addr(&self, addr: SocketAddr) {
        let _ = self.addr.set(addr);
    }
}
