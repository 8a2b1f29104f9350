//! The validated pipeline: every name resolved, every schema loaded, every
//! limit checked. Built once by `compile`; the runtime reads nothing else.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::error::ConfigError;
use crate::secret::Secret;
use crate::sink::postgres::kind::SinkKind;
use crate::sink::postgres::table::TableName;
use crate::source::topic::TopicPattern;
use crate::stage::step::Stage;

/// A compiled pipeline.
#[derive(Debug)]
pub struct Plan {
    /// The pipeline file it came from.
    pub file: PathBuf,
    /// The MQTT source.
    pub source: SourcePlan,
    /// Stages, in file order; `NodeRef::Stage(i)` indexes this.
    pub stages: Vec<StagePlan>,
    /// Sinks, in file order; `NodeRef::Sink(i)` indexes this.
    pub sinks: Vec<SinkPlan>,
    /// Index in `sinks` of the dead-letter sink that receives every rejection.
    pub dead_letter: usize,
    /// The database the sinks write to.
    pub database: DatabasePlan,
    /// Longest graceful drain.
    pub shutdown_timeout: Duration,
    /// Where `/metrics`, `/healthz` and `/readyz` listen.
    pub metrics_addr: SocketAddr,
    /// Runtime worker threads; 0: one per CPU core.
    pub worker_threads: usize,
    /// Problems that do not stop the pipeline (an unreachable stage).
    pub warnings: Vec<ConfigError>,
}

/// A stage or a sink: where envelopes go next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeRef {
    /// Index into `Plan::stages`.
    Stage(usize),
    /// Index into `Plan::sinks`.
    Sink(usize),
}

/// The MQTT source.
#[derive(Debug)]
pub struct SourcePlan {
    /// Connection settings.
    pub mqtt: MqttPlan,
    /// Topic pattern giving the envelope captures.
    pub topic: TopicPattern,
    /// Larger payloads are `too_large`.
    pub max_payload_bytes: usize,
    /// Capacity of the channel out of the source.
    pub queue: usize,
    /// Where envelopes go first.
    pub next: NodeRef,
}

/// MQTT connection settings, checked.
#[derive(Debug, Clone)]
pub struct MqttPlan {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Fixed client id (persistent session).
    pub client_id: String,
    /// User name and password.
    pub credentials: Option<(String, Secret)>,
    /// `(filter, qos)`.
    pub subscriptions: Vec<(String, u8)>,
    /// Keep-alive interval.
    pub keep_alive: Duration,
    /// Session expiry announced to the broker, in seconds.
    pub session_expiry_secs: u32,
    /// Receive Maximum announced to the broker.
    pub receive_maximum: u16,
    /// Largest packet accepted.
    pub max_packet_bytes: u32,
}

/// One stage and where its outputs go.
#[derive(Debug)]
pub struct StagePlan {
    /// Its name in the file.
    pub name: String,
    /// The compiled stage.
    pub stage: Stage,
    /// Output ports (a router has one per route; others have one).
    pub outputs: Vec<NodeRef>,
    /// Input channel capacity.
    pub queue: usize,
}

/// One sink.
#[derive(Debug, Clone)]
pub struct SinkPlan {
    /// Its name in the file.
    pub name: String,
    /// What it writes.
    pub kind: SinkKind,
    /// Where it writes.
    pub table: TableName,
    /// When it flushes.
    pub batch: BatchPlan,
    /// Input channel capacity.
    pub queue: usize,
}

/// Write a batch when a write slot is free and nothing more waits, at
/// `max_rows` rows, or `max_wait` after its first row.
#[derive(Debug, Clone, Copy)]
pub struct BatchPlan {
    /// Most rows per batch.
    pub max_rows: usize,
    /// Longest wait.
    pub max_wait: Duration,
    /// Batches written at once (each on its own connection).
    pub parallel: usize,
}

/// The database.
#[derive(Debug, Clone)]
pub struct DatabasePlan {
    /// Connection URL (may hold a password).
    pub url: Secret,
    /// Pool size.
    pub pool_max: u32,
    /// Role the sinks write as (row-level security applies to it).
    pub role: String,
    /// Create the database when missing.
    pub create_if_missing: bool,
    /// Apply migrations at start.
    pub migrate: bool,
    /// Dead letters older than this are deleted (`None`: kept).
    pub dlq_retention: Option<Duration>,
}

impl Plan {
    /// The name of a node, for logs and errors.
    pub fn node_name(&self, node: NodeRef) -> &str {
        match node {
            NodeRef::Stage(i) => &self.stages[i].name,
            NodeRef::Sink(i) => &self.sinks[i].name,
        }
    }
}
