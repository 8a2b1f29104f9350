//! The pipeline file as written: serde types mirroring the YAML, one field
//! per key, unknown keys refused. Defaults live here; meaning (names that
//! resolve, schemas that load) is checked by `graph::compile`.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;

use super::de::{lenient, lenient_opt};
use super::schema;

/// `source:` — where messages come from.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// MQTT connection and subscriptions.
    pub mqtt: MqttConfig,
    /// Topic pattern whose `{name}` segments become envelope captures,
    /// e.g. `traksense/{tenant}/{site}/{device}/{kind}`.
    pub topic: String,
    /// Larger payloads become `too_large` dead letters.
    #[serde(default = "default_max_payload", deserialize_with = "lenient")]
    #[schemars(schema_with = "schema::lenient_unsigned")]
    pub max_payload_bytes: usize,
    /// Capacity of the channel out of the source (`INGEST_QUEUE_MAX`).
    #[serde(default = "default_source_queue", deserialize_with = "lenient")]
    #[schemars(schema_with = "schema::lenient_unsigned")]
    pub queue: usize,
    /// The first stage or sink.
    pub next: String,
}

/// `source.mqtt:` — the broker connection.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host:port` (or `tcp://`).
    pub url: String,
    /// Fixed client id: the broker keeps this client's session (and the
    /// messages queued for it) while the runner is down.
    pub client_id: String,
    /// Optional user name.
    #[serde(default)]
    pub username: Option<String>,
    /// Optional password; never logged.
    #[serde(default)]
    pub password: Option<String>,
    /// Subscriptions, each with its QoS.
    pub subscriptions: Vec<SubscriptionConfig>,
    /// Keep-alive interval.
    #[serde(default = "default_keep_alive", deserialize_with = "lenient")]
    #[schemars(schema_with = "schema::lenient_unsigned")]
    pub keep_alive_secs: u64,
    /// How long the broker keeps our session after we disconnect.
    #[serde(default = "default_session_expiry", deserialize_with = "lenient")]
    #[schemars(schema_with = "schema::lenient_unsigned")]
    pub session_expiry_secs: u32,
    /// Our MQTT 5 Receive Maximum: unacknowledged messages the broker may
    /// send us. Throughput ≤ this ÷ commit latency. Default: the source
    /// queue, capped at 65535 (the protocol's limit).
    #[serde(default, deserialize_with = "lenient_opt")]
    #[schemars(schema_with = "schema::lenient_unsigned_opt")]
    pub receive_maximum: Option<u16>,
    /// Largest packet we accept. Must exceed `max_payload_bytes`, so that an
    /// oversized payload reaches the dead-letter table instead of being
    /// discarded by the broker.
    #[serde(default = "default_max_packet", deserialize_with = "lenient")]
    #[schemars(schema_with = "schema::lenient_unsigned")]
    pub max_packet_bytes: u32,
}

/// One topic filter.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionConfig {
    /// Topic filter, `$share/group/…` for a shared subscription.
    pub filter: String,
    /// 0, 1 or 2; at-least-once needs 1 or 2.
    #[serde(default = "default_qos", deserialize_with = "lenient")]
    #[schemars(schema_with = "schema::lenient_unsigned")]
    pub qos: u8,
}

/// `stages.NAME:` — one processing step, by `type`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum StageConfig {
    /// Sends each message to the route named by a topic capture.
    Router {
        /// The topic capture to route on, e.g. `kind`.
        on: String,
        /// Capture value → stage or sink name.
        routes: IndexMap<String, String>,
        /// Input channel capacity.
        #[serde(default = "default_stage_queue", deserialize_with = "lenient")]
        #[schemars(schema_with = "schema::lenient_unsigned")]
        queue: usize,
    },
    /// Parses JSON and validates it against a schema file.
    JsonSchema {
        /// Schema file, relative to the pipeline file.
        schema: String,
        /// Where valid messages go.
        next: String,
        /// Input channel capacity.
        #[serde(default = "default_stage_queue", deserialize_with = "lenient")]
        #[schemars(schema_with = "schema::lenient_unsigned")]
        queue: usize,
    },
    /// Selects a payload format and turns documents into rows.
    Normalize {
        /// The payload field whose value selects the format.
        #[serde(default = "default_by")]
        by: String,
        /// Field value → format and its schema.
        formats: IndexMap<String, FormatConfig>,
        /// Formats tried, by their schema, when the field is absent.
        #[serde(default)]
        detect: Vec<String>,
        /// Where rows go.
        next: String,
        /// Input channel capacity.
        #[serde(default = "default_stage_queue", deserialize_with = "lenient")]
        #[schemars(schema_with = "schema::lenient_unsigned")]
        queue: usize,
    },
}

/// `formats.VALUE:` of a normalize stage.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FormatConfig {
    /// A built-in format: `v1`, `parsec_v1`, `ack_v1`.
    #[schemars(schema_with = "schema::format_name")]
    pub format: String,
    /// Its JSON Schema file, relative to the pipeline file.
    pub schema: String,
}

/// `sinks.NAME:` — where rows are written, by `type`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// `timeseries`, `ack_upsert` or `dead_letter`.
    #[serde(rename = "type")]
    #[schemars(schema_with = "schema::sink_type")]
    pub kind: String,
    /// `schema.table` to write.
    #[serde(default)]
    pub table: Option<String>,
    /// When to flush.
    #[serde(default)]
    pub batch: BatchConfig,
    /// Input channel capacity.
    #[serde(default = "default_stage_queue", deserialize_with = "lenient")]
    #[schemars(schema_with = "schema::lenient_unsigned")]
    pub queue: usize,
}

/// `batch:` — a batch is written as soon as a write slot is free and no
/// more rows are waiting (group commit), or when it has `max_rows` rows, or
/// when its first row has waited `max_ms`, whichever comes first.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Most rows per batch (`INGEST_BATCH_SIZE`).
    #[serde(default = "default_batch_rows", deserialize_with = "lenient")]
    #[schemars(schema_with = "schema::lenient_unsigned")]
    pub max_rows: usize,
    /// Longest wait for a batch while every write slot is busy (`INGEST_BATCH_MS`).
    #[serde(default = "default_batch_ms", deserialize_with = "lenient")]
    #[schemars(schema_with = "schema::lenient_unsigned")]
    pub max_ms: u64,
    /// Batches written at once, each on its own pooled connection.
    #[serde(default = "default_parallel", deserialize_with = "lenient")]
    #[schemars(schema_with = "schema::lenient_unsigned")]
    pub parallel: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_rows: default_batch_rows(),
            max_ms: default_batch_ms(),
            parallel: default_parallel(),
        }
    }
}

/// `database:` — where sinks write.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://user@host:port/db`; never logged with its password.
    pub url: String,
    /// Connections in the pool (`DB_POOL_MAX`).
    #[serde(default = "default_pool_max", deserialize_with = "lenient")]
    #[schemars(schema_with = "schema::lenient_unsigned")]
    pub pool_max: u32,
    /// The role sinks write as; row-level security applies to it.
    #[serde(default = "default_role")]
    pub role: String,
    /// Create the database when it is missing.
    #[serde(default = "yes", deserialize_with = "lenient")]
    #[schemars(schema_with = "schema::lenient_bool")]
    pub create_if_missing: bool,
    /// Apply `migrations/` at start.
    #[serde(default = "yes", deserialize_with = "lenient")]
    #[schemars(schema_with = "schema::lenient_bool")]
    pub migrate: bool,
    /// Dead letters older than this many days are deleted (0 keeps them).
    #[serde(default = "default_retention", deserialize_with = "lenient")]
    #[schemars(schema_with = "schema::lenient_unsigned")]
    pub dlq_retention_days: u32,
}

/// `runtime:` — process-wide behaviour.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Longest graceful drain on SIGTERM/Ctrl-C before giving up.
    #[serde(default = "default_shutdown", deserialize_with = "lenient")]
    #[schemars(schema_with = "schema::lenient_unsigned")]
    pub shutdown_timeout_secs: u64,
    /// Address `/metrics`, `/healthz` and `/readyz` listen on.
    #[serde(default = "default_metrics_host")]
    pub metrics_host: String,
    /// Port of `/metrics` (`METRICS_PORT`); 0 picks a free one.
    #[serde(default = "default_metrics_port", deserialize_with = "lenient")]
    #[schemars(schema_with = "schema::lenient_unsigned")]
    pub metrics_port: u16,
    /// Threads running the pipeline's tasks (`INGEST_WORKER_THREADS`); 0:
    /// one per CPU core. On a small machine shared with the broker and the
    /// database, 1 avoids waking tasks across threads (BENCHMARKS.md).
    #[serde(default, deserialize_with = "lenient")]
    #[schemars(schema_with = "schema::lenient_unsigned")]
    pub worker_threads: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            shutdown_timeout_secs: default_shutdown(),
            metrics_host: default_metrics_host(),
            metrics_port: default_metrics_port(),
            worker_threads: 0,
        }
    }
}

/// The whole file as one type, for `runner schema` only: the loader reads
/// each section on its own (so one broken section does not hide the errors
/// of another) and never builds this.
#[derive(Debug, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "TrakSense ingest pipeline")]
pub struct PipelineFile {
    /// Where messages come from.
    pub source: SourceConfig,
    /// Named processing steps, each with a `type`.
    #[serde(default)]
    #[schemars(schema_with = "schema::named::<StageConfig>")]
    pub stages: IndexMap<String, StageConfig>,
    /// Named sinks; exactly one must be a `dead_letter` sink.
    #[schemars(schema_with = "schema::named::<SinkConfig>")]
    pub sinks: IndexMap<String, SinkConfig>,
    /// The database the sinks write to.
    pub database: DatabaseConfig,
    /// Process-wide behaviour.
    #[serde(default)]
    pub runtime: RuntimeConfig,
}

/// The top-level keys, each loaded separately so one broken section does not
/// hide the errors of another.
pub const TOP_LEVEL_KEYS: [&str; 5] = ["source", "stages", "sinks", "database", "runtime"];

fn default_max_payload() -> usize {
    256 * 1024
}
fn default_source_queue() -> usize {
    50_000
}
fn default_keep_alive() -> u64 {
    30
}
fn default_session_expiry() -> u32 {
    7 * 24 * 3600
}
fn default_max_packet() -> u32 {
    16 * 1024 * 1024
}
fn default_qos() -> u8 {
    1
}
fn default_stage_queue() -> usize {
    1024
}
fn default_by() -> String {
    "schema".into()
}
fn default_batch_rows() -> usize {
    5000
}
fn default_batch_ms() -> u64 {
    50
}
fn default_parallel() -> usize {
    2
}
fn default_pool_max() -> u32 {
    8
}
fn default_role() -> String {
    "ingest_writer".into()
}
fn yes() -> bool {
    true
}
fn default_retention() -> u32 {
    14
}
fn default_shutdown() -> u64 {
    30
}
fn default_metrics_host() -> String {
    "0.0.0.0".into()
}
fn default_metrics_port() -> u16 {
    9100
}
