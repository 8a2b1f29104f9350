//! The `parsec_v1` vendor format of Parsec controllers: two digital inputs
//! and a signal strength, sent without a `schema` field by their firmware.
//!
//! One message becomes the rows `status` (`RUN` when `di1` is 1, else
//! `STOP`), `fault` (`di2` is 1) and `rssi` (in dBm, only when sent), all at
//! the message's `ts`, sharing `meta` = `{"fw": …, "src": "parsec_v1"}` so
//! a reading can be traced to the firmware that produced it.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::envelope::{Body, MeasureRow, PointValue, Rejection};

use super::fields::{broken, optional_str, required, root_object, top_path};
use super::timestamp::parse_ts;

/// Turns a parsec_v1 document into its two or three rows.
pub fn normalize(doc: &Value) -> Result<Body, Rejection> {
    let object = root_object(doc)?;
    let ts = parse_ts(required(object, "ts")?, "/ts")?;
    let running = digital_input(object, "di1")?;
    let fault = digital_input(object, "di2")?;
    let rssi = match object.get("rssi") {
        None => None,
        Some(value) => Some(
            value
                .as_f64()
                .ok_or_else(|| broken("/rssi", "expected a number (dBm)", value))?,
        ),
    };
    let mut meta = Map::new();
    if let Some(fw) = optional_str(object, "fw")? {
        meta.insert("fw".into(), Value::from(fw));
    }
    meta.insert("src".into(), Value::from("parsec_v1"));
    let meta: Arc<str> = Arc::from(Value::Object(meta).to_string());

    let row = |point: &str, value: PointValue, unit: Option<&str>| MeasureRow {
        point: point.to_string(),
        ts,
        value,
        unit: unit.map(str::to_string),
        meta: Some(meta.clone()),
    };
    let status = if running { "RUN" } else { "STOP" };
    let mut rows = vec![
        row("status", PointValue::Text(status.to_string()), None),
        row("fault", PointValue::Bool(fault), None),
    ];
    if let Some(rssi) = rssi {
        rows.push(row("rssi", PointValue::Num(rssi), Some("dBm")));
    }
    Ok(Body::Measures(rows))
}

/// A digital input: exactly 0 or 1 (as the schema's `enum`, 1.0 is 1).
fn digital_input(object: &Map<String, Value>, key: &str) -> Result<bool, Rejection> {
    let value = required(object, key)?;
    match value.as_f64() {
        Some(1.0) => Ok(true),
        Some(0.0) => Ok(false),
        _ => Err(broken(&top_path(key), "expected 0 or 1", value)),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    use super::*;
    use crate::envelope::Reason;
    use crate::stage::normalize::stage::{normalized, rejected, telemetry_stage};

    fn rows(payload: &str) -> Vec<MeasureRow> {
        match normalized(&telemetry_stage(), payload) {
            Body::Measures(rows) => rows,
            other => panic!("expected measures, got {other:?}"),
        }
    }

    fn expected_rows(status: &str, fault: bool, rssi: Option<f64>, meta: &str) -> Vec<MeasureRow> {
        let ts = Utc
            .with_ymd_and_hms(2025, 10, 7, 15, 30, 0)
            .single()
            .expect("valid");
        let meta: Arc<str> = Arc::from(meta);
        let row = |point: &str, value, unit: Option<&str>| MeasureRow {
            point: point.into(),
            ts,
            value,
            unit: unit.map(Into::into),
            meta: Some(meta.clone()),
        };
        let mut rows = vec![
            row("status", PointValue::Text(status.into()), None),
            row("fault", PointValue::Bool(fault), None),
        ];
        if let Some(rssi) = rssi {
            rows.push(row("rssi", PointValue::Num(rssi), Some("dBm")));
        }
        rows
    }

    #[test]
    fn contract_example() {
        assert_eq!(
            rows(
                r#"{"schema":"parsec_v1","ts":"2025-10-07T15:30:00Z","di1":1,"di2":0,"rssi":-67,"fw":"2.1.3"}"#
            ),
            expected_rows(
                "RUN",
                false,
                Some(-67.0),
                r#"{"fw":"2.1.3","src":"parsec_v1"}"#
            )
        );
    }

    #[test]
    fn contract_example_without_schema_field_is_detected() {
        assert_eq!(
            rows(r#"{"ts":"2025-10-07T15:30:00Z","di1":1,"di2":0,"rssi":-67,"fw":"2.1.3"}"#),
            expected_rows(
                "RUN",
                false,
                Some(-67.0),
                r#"{"fw":"2.1.3","src":"parsec_v1"}"#
            )
        );
    }

    #[test]
    fn stopped_with_fault_and_no_optional_fields() {
        assert_eq!(
            rows(r#"{"ts":"2025-10-07T17:30:00+02:00","di1":0,"di2":1}"#),
            expected_rows("STOP", true, None, r#"{"src":"parsec_v1"}"#)
        );
    }

    #[test]
    fn a_bad_input_is_a_schema_error_when_named_and_unknown_when_not() {
        let stage = telemetry_stage();
        let r = rejected(
            &stage,
            br#"{"schema":"parsec_v1","ts":"2025-10-07T15:30:00Z","di1":1}"#,
            Reason::SchemaError,
        );
        assert_eq!(r.detail, r#"parsec_v1: /: "di2" is a required property"#);
        let r = rejected(
            &stage,
            br#"{"ts":"2025-10-07T15:30:00Z","di1":3,"di2":0}"#,
            Reason::UnknownSchema,
        );
        assert_eq!(
            r.detail,
            "no `schema` field and the payload matches none of: parsec_v1"
        );
    }

    #[test]
    fn ts_without_zone_is_bad_timestamp() {
        let r = rejected(
            &telemetry_stage(),
            br#"{"ts":"2025-10-07T15:30:00","di1":1,"di2":0}"#,
            Reason::BadTimestamp,
        );
        assert!(r.detail.starts_with("/ts: "), "{}", r.detail);
    }

    #[test]
    fn the_normalizer_does_not_trust_the_schema() {
        let cases = [
            (
                json!({"ts": "2025-10-07T15:30:00Z", "di1": 2, "di2": 0}),
                "/di1: expected 0 or 1, got 2 (a number)",
            ),
            (
                json!({"ts": "2025-10-07T15:30:00Z", "di1": 1, "di2": "1"}),
                "/di2: expected 0 or 1, got \"1\" (a string)",
            ),
            (
                json!({"ts": "2025-10-07T15:30:00Z", "di1": 1}),
                "/di2: required field is missing",
            ),
            (
                json!({"ts": "2025-10-07T15:30:00Z", "di1": 1, "di2": 0, "rssi": "-67"}),
                "/rssi: expected a number (dBm), got \"-67\" (a string)",
            ),
            (
                json!({"ts": "2025-10-07T15:30:00Z", "di1": 1, "di2": 0, "fw": 2}),
                "/fw: expected a string, got 2 (a number)",
            ),
        ];
        for (doc, expected) in cases {
            let r = normalize(&doc).expect_err(expected);
            assert_eq!(
                (r.reason, r.detail.as_str()),
                (Reason::SchemaError, expected)
            );
        }
    }
}
