//! What travels between stages: one MQTT message, its topic captures, its
//! delivery token, and what the stages have made of it so far.
//!
//! The raw payload is kept untouched (a reference-counted [`Bytes`]) from the
//! source to the dead-letter table, so a rejected message is stored with the
//! exact bytes the device sent. Stages replace [`Body`]; they never copy the
//! payload.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::delivery::DeliveryToken;

/// Envelopes a stage or sink takes from its input channel per wake-up, at
/// most: one wake-up per burst instead of per message, bounded so a busy
/// task still yields.
pub const RECV_BURST: usize = 256;

/// One message on its way through the pipeline.
#[derive(Debug)]
pub struct Envelope {
    /// The topic exactly as published; written to `ingest_errors.topic`.
    pub topic: Arc<str>,
    /// Values captured from the topic by the source's pattern; empty when the
    /// topic did not match (the message is then already a `bad_topic`).
    pub captures: Captures,
    /// The exact bytes received, never re-encoded.
    pub payload: Bytes,
    /// When the source received the message; feeds the pipeline latency.
    pub received_at: DateTime<Utc>,
    /// What the stages have made of the payload so far.
    pub body: Body,
    /// Settles (and lets the source PUBACK) once this message is committed.
    pub token: DeliveryToken,
}

impl Envelope {
    /// The tenant taken from the topic: the only place a tenant comes from.
    pub fn tenant(&self) -> Option<&str> {
        self.captures.get("tenant")
    }

    /// Turns this envelope into a dead letter, keeping its payload and token.
    pub fn reject(mut self, reason: Reason, detail: impl Into<String>) -> Envelope {
        self.body = Body::Rejected(Rejection {
            reason,
            detail: detail.into(),
        });
        self
    }
}

/// Named values captured from the topic (`tenant`, `site`, `device`, `kind`…).
///
/// A handful of entries at most, so a vector beats a map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captures(Vec<(Arc<str>, String)>);

impl Captures {
    /// Builds captures from `(name, value)` pairs in pattern order.
    pub fn new(pairs: Vec<(Arc<str>, String)>) -> Self {
        Captures(pairs)
    }

    /// The value captured under `name`, if the pattern has it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| &**k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The state of a message's content as it moves through the stages.
#[derive(Debug)]
pub enum Body {
    /// Nothing parsed yet: only `Envelope::payload`.
    Raw,
    /// The payload parsed as JSON (by the first stage that needed it).
    Json(serde_json::Value),
    /// Rows for a `timeseries` sink.
    Measures(Vec<MeasureRow>),
    /// One row for an `ack_upsert` sink.
    Ack(AckRow),
    /// Refused by a stage; goes to the dead-letter sink.
    Rejected(Rejection),
}

/// One point of telemetry, destined for `ts_measure`. Tenant, site and
/// device come from the envelope's captures, not from here.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasureRow {
    /// `point_id`: the point's name.
    pub point: String,
    /// The point's timestamp (the message's, unless the point has its own).
    pub ts: DateTime<Utc>,
    /// The typed value: exactly one `v_*` column is set from it.
    pub value: PointValue,
    /// Unit, e.g. `°C` or `dBm`.
    pub unit: Option<String>,
    /// The message's `meta`, serialized once and shared by all its rows.
    pub meta: Option<Arc<str>>,
}

/// A point's value, by the column it lands in.
#[derive(Debug, Clone, PartialEq)]
pub enum PointValue {
    /// `v_num`
    Num(f64),
    /// `v_bool`
    Bool(bool),
    /// `v_text`
    Text(String),
    /// `v_json`, serialized.
    Json(String),
}

/// One command acknowledgement, destined for `cmd_ack`.
#[derive(Debug, Clone, PartialEq)]
pub struct AckRow {
    /// The command's id, unique per tenant and device.
    pub cmd_id: String,
    /// Whether the device executed the command.
    pub ok: bool,
    /// When the device executed it, if it said.
    pub ts_exec: Option<DateTime<Utc>>,
    /// The device's error text, if any.
    pub err: Option<String>,
    /// The whole ACK document, stored as `payload jsonb`.
    pub payload: String,
}

/// Why and how a message was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Stable code, stored in `ingest_errors.reason`.
    pub reason: Reason,
    /// What a person can act on: the JSON path, the rule, the value.
    pub detail: String,
}

/// The closed set of dead-letter reason codes (CONTRACT.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The topic does not fit the pattern, or its kind has no route.
    BadTopic,
    /// The payload is over `max_payload_bytes`.
    TooLarge,
    /// Not UTF-8, not JSON, duplicate keys.
    ParseError,
    /// No declared format matches the payload.
    UnknownSchema,
    /// The payload breaks its JSON Schema.
    SchemaError,
    /// A timestamp without a zone, or not a timestamp.
    BadTimestamp,
    /// The database refused the message for a reason retrying cannot fix.
    DbRejected,
}

impl Reason {
    /// Every reason, for tests and documentation.
    pub const ALL: [Reason; 7] = [
        Reason::BadTopic,
        Reason::TooLarge,
        Reason::ParseError,
        Reason::UnknownSchema,
        Reason::SchemaError,
        Reason::BadTimestamp,
        Reason::DbRejected,
    ];

    /// The code stored in `ingest_errors.reason` and used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BadTopic => "bad_topic",
            Reason::TooLarge => "too_large",
            Reason::ParseError => "parse_error",
            Reason::UnknownSchema => "unknown_schema",
            Reason::SchemaError => "schema_error",
            Reason::BadTimestamp => "bad_timestamp",
            Reason::DbRejected => "db_rejected",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
