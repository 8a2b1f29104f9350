//! The TrakSense `v1` telemetry format: a message timestamp and typed points.
//!
//! Each point becomes one `ts_measure` row whose value lands in the column
//! its type `t` names (inferred from `v` when absent). A point's own `ts`
//! overrides the message's, so a device can send buffered readings in one
//! message. `meta` is serialized once per message and shared by its rows;
//! a `tenant` field is ignored (the tenant comes from the topic only).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::envelope::{Body, MeasureRow, Rejection};

use super::fields::{bounded_str, broken, missing, pick, root_object};
use super::point_type::{infer, PointType};
use super::timestamp::parse_ts;

/// Longest point name, in characters (`point_id`).
pub const MAX_NAME_CHARS: usize = 128;

/// Turns a v1 document into one row per point.
pub fn normalize(doc: &Value) -> Result<Body, Rejection> {
    let object = root_object(doc)?;
    let [ts, points, meta] = pick(object, ["ts", "points", "meta"]);
    let ts = parse_ts(ts.ok_or_else(|| missing("/ts"))?, "/ts")?;
    let points = match points.ok_or_else(|| missing("/points"))? {
        Value::Array(points) if !points.is_empty() => points,
        other => {
            return Err(broken(
                "/points",
                "expected an array of 1 or more points",
                other,
            ))
        }
    };
    let meta: Option<Arc<str>> = match meta {
        None => None,
        Some(meta @ Value::Object(_)) => Some(Arc::from(meta.to_string())),
        Some(other) => return Err(broken("/meta", "expected an object", other)),
    };
    points
        .iter()
        .enumerate()
        .map(|(index, point)| row(index, point, ts, &meta))
        .collect::<Result<Vec<_>, _>>()
        .map(Body::Measures)
}

/// One point's row; `index` is only used to name paths in rejections.
fn row(
    index: usize,
    point: &Value,
    message_ts: DateTime<Utc>,
    meta: &Option<Arc<str>>,
) -> Result<MeasureRow, Rejection> {
    let at = |field: &str| format!("/points/{index}{field}");
    let Value::Object(fields) = point else {
        return Err(broken(&at(""), "expected a point object", point));
    };
    let [name, v, t, unit, ts] = pick(fields, ["name", "v", "t", "u", "ts"]);
    let name = match name {
        Some(name) => bounded_str(name, MAX_NAME_CHARS, &at("/name"))?,
        None => return Err(missing(&at("/name"))),
    };
    let v = v.ok_or_else(|| missing(&at("/v")))?;
    let value = match t {
        Some(t) => {
            let kind = PointType::from_value(t).ok_or_else(|| {
                broken(
                    &at("/t"),
                    "expected one of float, num, int, bool, text, enum, json",
                    t,
                )
            })?;
            kind.value(v).ok_or_else(|| {
                broken(
                    &at("/v"),
                    &format!("t {:?} needs {}", kind.name(), kind.expects()),
                    v,
                )
            })?
        }
        None => infer(v).ok_or_else(|| {
            broken(
                &at("/v"),
                "a value without `t` must not be null (use \"t\":\"json\")",
                v,
            )
        })?,
    };
    let unit = match unit {
        None => None,
        Some(Value::String(unit)) => Some(unit.clone()),
        Some(other) => return Err(broken(&at("/u"), "expected a unit string", other)),
    };
    let ts = match ts {
        None => message_ts,
        Some(ts) => parse_ts(ts, &at("/ts"))?,
    };
    Ok(MeasureRow {
        point: name.to_string(),
        ts,
        value,
        unit,
        meta: meta.clone(),
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;
    use crate::envelope::{PointValue, Reason};
    use crate::stage::normalize::stage::{normalized, rejected, telemetry_stage};

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 10, 7, h, m, s)
            .single()
            .expect("valid")
    }

    fn rows(payload: &str) -> Vec<MeasureRow> {
        match normalized(&telemetry_stage(), payload) {
            Body::Measures(rows) => rows,
            other => panic!("expected measures, got {other:?}"),
        }
    }

    /// A v1 message with these points, through the stage and the real schema.
    fn values(points: serde_json::Value) -> Vec<PointValue> {
        let doc = json!({"schema": "v1", "ts": "2025-10-07T15:30:00Z", "points": points});
        rows(&doc.to_string())
            .into_iter()
            .map(|r| r.value)
            .collect()
    }

    fn reject(payload: &str, reason: Reason) -> String {
        rejected(&telemetry_stage(), payload.as_bytes(), reason).detail
    }

    #[test]
    fn contract_example() {
        let rows = rows(
            r#"{"schema":"v1","ts":"2025-10-07T15:30:00Z",
                "points":[{"name":"temp_agua","t":"float","v":25.5,"u":"°C"}],
                "meta":{"fw":"1.0.0","src":"test"}}"#,
        );
        assert_eq!(
            rows,
            vec![MeasureRow {
                point: "temp_agua".into(),
                ts: at(15, 30, 0),
                value: PointValue::Num(25.5),
                unit: Some("°C".into()),
                meta: Some(Arc::from(r#"{"fw":"1.0.0","src":"test"}"#)),
            }]
        );
    }

    #[test]
    fn meta_is_serialized_once_and_shared() {
        let rows = rows(
            r#"{"schema":"v1","ts":"2025-10-07T15:30:00Z","tenant":"someone-else",
                "points":[{"name":"a","v":1},{"name":"b","v":2}],"meta":{"k":[1]}}"#,
        );
        let (Some(a), Some(b)) = (&rows[0].meta, &rows[1].meta) else {
            panic!("meta missing: {rows:?}");
        };
        assert_eq!(&**a, r#"{"k":[1]}"#);
        assert!(Arc::ptr_eq(a, b), "one allocation per message");
    }

    #[test]
    fn absent_meta_and_unit_are_none() {
        let rows =
            rows(r#"{"schema":"v1","ts":"2025-10-07T15:30:00Z","points":[{"name":"a","v":1}]}"#);
        assert_eq!(
            rows,
            vec![MeasureRow {
                point: "a".into(),
                ts: at(15, 30, 0),
                value: PointValue::Num(1.0),
                unit: None,
                meta: None,
            }]
        );
    }

    #[test]
    fn types_are_inferred_from_v() {
        assert_eq!(
            values(json!([
                {"name": "n", "v": -3.25},
                {"name": "i", "v": 7},
                {"name": "b", "v": false},
                {"name": "s", "v": "on"},
                {"name": "o", "v": {"x": 1}},
                {"name": "a", "v": [1, "2"]},
            ])),
            vec![
                PointValue::Num(-3.25),
                PointValue::Num(7.0),
                PointValue::Bool(false),
                PointValue::Text("on".into()),
                PointValue::Json(r#"{"x":1}"#.into()),
                PointValue::Json(r#"[1,"2"]"#.into()),
            ]
        );
    }

    #[test]
    fn declared_types_pick_the_column() {
        assert_eq!(
            values(json!([
                {"name": "f", "t": "float", "v": 1.5},
                {"name": "n", "t": "num", "v": 2},
                {"name": "i", "t": "int", "v": 3},
                {"name": "b", "t": "bool", "v": true},
                {"name": "t", "t": "text", "v": "x"},
                {"name": "e", "t": "enum", "v": "AUTO"},
                {"name": "j", "t": "json", "v": 4},
                {"name": "z", "t": "json", "v": null},
            ])),
            vec![
                PointValue::Num(1.5),
                PointValue::Num(2.0),
                PointValue::Num(3.0),
                PointValue::Bool(true),
                PointValue::Text("x".into()),
                PointValue::Text("AUTO".into()),
                PointValue::Json("4".into()),
                PointValue::Json("null".into()),
            ]
        );
    }

    #[test]
    fn point_ts_overrides_and_offsets_become_utc() {
        let rows = rows(
            r#"{"schema":"v1","ts":"2025-10-07T17:30:00+02:00","points":[
                {"name":"a","v":1},
                {"name":"a","v":2,"ts":"2025-10-07T15:29:00.250Z"},
                {"name":"a","v":3,"ts":"2025-10-07T10:28:00-05:00"}]}"#,
        );
        let ts: Vec<DateTime<Utc>> = rows.iter().map(|r| r.ts).collect();
        assert_eq!(
            ts,
            vec![
                at(15, 30, 0),
                at(15, 29, 0) + chrono::Duration::milliseconds(250),
                at(15, 28, 0),
            ]
        );
    }

    #[test]
    fn missing_ts_is_a_schema_error() {
        let detail = reject(
            r#"{"schema":"v1","points":[{"name":"a","v":1}]}"#,
            Reason::SchemaError,
        );
        assert_eq!(detail, r#"v1: /: "ts" is a required property"#);
        let direct = normalize(&json!({"points": [{"name": "a", "v": 1}]})).expect_err("no ts");
        assert_eq!(direct.reason, Reason::SchemaError);
        assert_eq!(direct.detail, "/ts: required field is missing");
    }

    #[test]
    fn ts_without_zone_is_bad_timestamp() {
        let detail = reject(
            r#"{"schema":"v1","ts":"2025-10-07T15:30:00","points":[{"name":"a","v":1}]}"#,
            Reason::BadTimestamp,
        );
        assert!(
            detail.starts_with(r#"/ts: "2025-10-07T15:30:00" has no time zone"#),
            "{detail}"
        );
        let detail = reject(
            r#"{"schema":"v1","ts":"2025-10-07T15:30:00Z","points":[{"name":"a","v":1,"ts":"2025-10-07 15:00:00"}]}"#,
            Reason::BadTimestamp,
        );
        assert!(detail.starts_with("/points/0/ts: "), "{detail}");
    }

    #[test]
    fn ts_that_is_not_a_timestamp_is_bad_timestamp() {
        let detail = reject(
            r#"{"schema":"v1","ts":"now","points":[{"name":"a","v":1}]}"#,
            Reason::BadTimestamp,
        );
        assert!(
            detail.starts_with(r#"/ts: "now" is not a timestamp"#),
            "{detail}"
        );
        // Not even a string: the schema reports it first.
        let detail = reject(
            r#"{"schema":"v1","ts":17,"points":[{"name":"a","v":1}]}"#,
            Reason::SchemaError,
        );
        assert_eq!(detail, r#"v1: /ts: 17 is not of type "string""#);
    }

    #[test]
    fn v_not_fitting_t_is_a_schema_error_at_its_path() {
        let detail = reject(
            r#"{"schema":"v1","ts":"2025-10-07T15:30:00Z","points":[{"name":"a","t":"float","v":"25.5"}]}"#,
            Reason::SchemaError,
        );
        assert_eq!(detail, r#"v1: /points/0/v: "25.5" is not of type "number""#);
        let detail = reject(
            r#"{"schema":"v1","ts":"2025-10-07T15:30:00Z","points":[{"name":"a","v":1},{"name":"b","t":"int","v":2.5}]}"#,
            Reason::SchemaError,
        );
        assert!(detail.starts_with("v1: /points/1/v: "), "{detail}");
    }

    #[test]
    fn the_normalizer_does_not_trust_the_schema() {
        let cases = [
            (
                json!([{"name": "a", "t": "float", "v": "x"}]),
                r#"/points/0/v: t "float" needs a number, got "x" (a string)"#,
            ),
            (
                json!([{"name": "a", "t": "int", "v": 2.5}]),
                r#"/points/0/v: t "int" needs an integer, got 2.5 (a number)"#,
            ),
            (
                json!([{"name": "a", "t": "bool", "v": 1}]),
                r#"/points/0/v: t "bool" needs a boolean, got 1 (a number)"#,
            ),
            (
                json!([{"name": "a", "t": "text", "v": 1}]),
                r#"/points/0/v: t "text" needs a string, got 1 (a number)"#,
            ),
            (
                json!([{"name": "a", "t": "double", "v": 1}]),
                r#"/points/0/t: expected one of float, num, int, bool, text, enum, json, got "double" (a string)"#,
            ),
            (
                json!([{"name": "a", "v": null}]),
                r#"/points/0/v: a value without `t` must not be null (use "t":"json"), got null (null)"#,
            ),
            (
                json!([{"name": "", "v": 1}]),
                r#"/points/0/name: expected a string of 1 to 128 characters, got "" (a string)"#,
            ),
            (
                json!([{"v": 1}]),
                "/points/0/name: required field is missing",
            ),
            (
                json!([{"name": "a"}]),
                "/points/0/v: required field is missing",
            ),
            (
                json!([{"name": "a", "v": 1, "u": 3}]),
                "/points/0/u: expected a unit string, got 3 (a number)",
            ),
            (
                json!([7]),
                "/points/0: expected a point object, got 7 (a number)",
            ),
            (
                json!([]),
                "/points: expected an array of 1 or more points, got [] (an array)",
            ),
        ];
        for (points, expected) in cases {
            let doc = json!({"ts": "2025-10-07T15:30:00Z", "points": points});
            let r = normalize(&doc).expect_err(expected);
            assert_eq!(
                (r.reason, r.detail.as_str()),
                (Reason::SchemaError, expected)
            );
        }
        let r = normalize(
            &json!({"ts": "2025-10-07T15:30:00Z", "points": [{"name": "a", "v": 1}], "meta": 1}),
        )
        .expect_err("meta");
        assert_eq!(r.detail, "/meta: expected an object, got 1 (a number)");
    }

    #[test]
    fn points_must_number_1_to_1000() {
        let detail = reject(
            r#"{"schema":"v1","ts":"2025-10-07T15:30:00Z","points":[]}"#,
            Reason::SchemaError,
        );
        assert_eq!(detail, "v1: /points: [] has less than 1 item");
        let many: Vec<_> = (0..1001)
            .map(|i| json!({"name": format!("p{i}"), "v": i}))
            .collect();
        let doc = json!({"schema": "v1", "ts": "2025-10-07T15:30:00Z", "points": many});
        let detail = reject(&doc.to_string(), Reason::SchemaError);
        assert!(detail.starts_with("v1: /points: "), "{detail}");
        assert!(detail.contains("more than 1000 items"), "{detail}");
    }

    #[test]
    fn null_without_t_is_refused_by_the_schema_too() {
        let detail = reject(
            r#"{"schema":"v1","ts":"2025-10-07T15:30:00Z","points":[{"name":"a","v":null}]}"#,
            Reason::SchemaError,
        );
        assert!(
            detail.starts_with("v1: /points/0/v: null is not of type"),
            "{detail}"
        );
    }
}
