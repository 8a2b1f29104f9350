//! Rows as the tables will hold them, for people and scripts to read: one
//! JSON object per row, keyed by column name, in table order.
//!
//! The column mapping mirrors the sinks' (`sink/postgres/timeseries.rs`,
//! `ack_upsert.rs`): tenant, site and device come from the topic captures,
//! exactly one `v_*` column is set, `meta`, `v_json` and `payload` are JSON.
//! Columns the database fills by itself (`qual`, `ingested_at`,
//! `created_at`, `updated_at`) are left out.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use crate::envelope::{AckRow, Body, Captures, Envelope, MeasureRow, PointValue};

/// One row: column name → value (`null` for SQL NULL).
pub type Row = Map<String, Value>;

/// The columns of a `timeseries` row, in table order.
pub const MEASURE_COLUMNS: [&str; 11] = [
    "tenant_id",
    "site_id",
    "device_id",
    "point_id",
    "ts",
    "v_num",
    "v_bool",
    "v_text",
    "v_json",
    "unit",
    "meta",
];

/// The columns of an `ack_upsert` row, in table order.
pub const ACK_COLUMNS: [&str; 7] = [
    "tenant_id",
    "device_id",
    "cmd_id",
    "ok",
    "ts_exec",
    "err",
    "payload",
];

/// The rows an envelope's body will become; empty for a body that is not
/// rows (raw, JSON or rejected).
pub fn rows_of(envelope: &Envelope) -> Vec<Row> {
    match &envelope.body {
        Body::Measures(rows) => rows
            .iter()
            .map(|row| measure_row(&envelope.captures, row))
            .collect(),
        Body::Ack(ack) => vec![ack_row(&envelope.captures, ack)],
        Body::Raw | Body::Json(_) | Body::Rejected(_) => Vec::new(),
    }
}

/// A `ts_measure` row.
pub fn measure_row(captures: &Captures, row: &MeasureRow) -> Row {
    let (num, boolean, text, json) = match &row.value {
        PointValue::Num(v) => (number(*v), Value::Null, Value::Null, Value::Null),
        PointValue::Bool(v) => (Value::Null, Value::Bool(*v), Value::Null, Value::Null),
        PointValue::Text(v) => (
            Value::Null,
            Value::Null,
            Value::String(v.clone()),
            Value::Null,
        ),
        PointValue::Json(v) => (Value::Null, Value::Null, Value::Null, json_text(v)),
    };
    let values = [
        text_or_null(captures.get("tenant")),
        text_or_null(captures.get("site")),
        text_or_null(captures.get("device")),
        Value::String(row.point.clone()),
        Value::String(timestamp(row.ts)),
        num,
        boolean,
        text,
        json,
        text_or_null(row.unit.as_deref()),
        row.meta.as_deref().map_or(Value::Null, json_text),
    ];
    MEASURE_COLUMNS
        .iter()
        .map(|c| c.to_string())
        .zip(values)
        .collect()
}

/// A `cmd_ack` row.
pub fn ack_row(captures: &Captures, ack: &AckRow) -> Row {
    let values = [
        text_or_null(captures.get("tenant")),
        text_or_null(captures.get("device")),
        Value::String(ack.cmd_id.clone()),
        Value::Bool(ack.ok),
        ack.ts_exec
            .map_or(Value::Null, |ts| Value::String(timestamp(ts))),
        text_or_null(ack.err.as_deref()),
        json_text(&ack.payload),
    ];
    ACK_COLUMNS
        .iter()
        .map(|c| c.to_string())
        .zip(values)
        .collect()
}

/// A timestamp as RFC 3339 in UTC with `Z`, fractional seconds only when
/// there are some: `2025-10-07T15:30:00Z`.
pub fn timestamp(ts: DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn number(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

fn text_or_null(v: Option<&str>) -> Value {
    v.map_or(Value::Null, |s| Value::String(s.to_string()))
}

/// JSON text the sink stores as `jsonb`, as the value it stands for.
fn json_text(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;

    fn captures() -> Captures {
        Captures::new(vec![
            (Arc::from("tenant"), "t1".to_string()),
            (Arc::from("site"), "s1".to_string()),
            (Arc::from("device"), "d1".to_string()),
            (Arc::from("kind"), "telem".to_string()),
        ])
    }

    #[test]
    fn measure_rows_set_exactly_one_value_column() {
        let ts = DateTime::parse_from_rfc3339("2025-10-07T15:30:00.250+02:00")
            .unwrap()
            .with_timezone(&Utc);
        let row = MeasureRow {
            point: "cfg".into(),
            ts,
            value: PointValue::Json(r#"{"a":[1,2]}"#.into()),
            unit: None,
            meta: Some(Arc::from(r#"{"fw":"1.0"}"#)),
        };
        let row = measure_row(&captures(), &row);
        assert_eq!(
            Value::Object(row),
            json!({"tenant_id": "t1", "site_id": "s1", "device_id": "d1", "point_id": "cfg",
                   "ts": "2025-10-07T13:30:00.250Z", "v_num": null, "v_bool": null,
                   "v_text": null, "v_json": {"a": [1, 2]}, "unit": null,
                   "meta": {"fw": "1.0"}})
        );
    }

    #[test]
    fn ack_rows_carry_the_whole_document() {
        let ack = AckRow {
            cmd_id: "c1".into(),
            ok: false,
            ts_exec: None,
            err: Some("busy".into()),
            payload: r#"{"cmd_id":"c1","ok":false,"err":"busy"}"#.into(),
        };
        let row = ack_row(&captures(), &ack);
        assert_eq!(
            row.keys().map(String::as_str).collect::<Vec<_>>(),
            ACK_COLUMNS
        );
        assert_eq!(
            row["payload"],
            json!({"cmd_id": "c1", "ok": false, "err": "busy"})
        );
        assert_eq!(row["ts_exec"], Value::Null);
    }
}
