//! Observability: counters ([`stats`]), readiness ([`health`]), metrics
//! exported as Prometheus text ([`metrics`]) on `/metrics` with `/healthz`
//! and `/readyz` ([`http`]), queue-fill warnings ([`queue`]), and logs
//! ([`logs`]). Metric names live only in `metrics.rs`.

pub mod health;
pub mod http;
pub mod hub;
pub mod logs;
pub mod metrics;
pub mod queue;
pub mod stats;

pub use health::Health;
pub use hub::Telemetry;
pub use logs::{init_tracing, LogFormat};
pub use stats::{add, get, SinkStats, SourceStats, StageStats};
