//! The TrakSense `v1` command acknowledgement: one `cmd_ack` row per message.
//!
//! `cmd_id` and `ok` are required; `ts_exec` and `err` may be absent or
//! `null`. The whole document is kept as `payload`, so fields a newer
//! firmware adds are stored, not lost.

use serde_json::Value;

use crate::envelope::{AckRow, Body, Rejection};

use super::fields::{bounded_str, broken, optional_str, required, root_object};
use super::timestamp::parse_ts;

/// Longest command id, in characters.
pub const MAX_CMD_ID_CHARS: usize = 128;

/// Turns an ACK document into its row.
pub fn normalize(doc: &Value) -> Result<Body, Rejection> {
    let object = root_object(doc)?;
    let cmd_id = bounded_str(required(object, "cmd_id")?, MAX_CMD_ID_CHARS, "/cmd_id")?;
    let ok = match required(object, "ok")? {
        Value::Bool(ok) => *ok,
        other => return Err(broken("/ok", "expected a boolean", other)),
    };
    let ts_exec = match object.get("ts_exec") {
        None | Some(Value::Null) => None,
        Some(ts) => Some(parse_ts(ts, "/ts_exec")?),
    };
    let err = optional_str(object, "err")?.map(str::to_string);
    Ok(Body::Ack(AckRow {
        cmd_id: cmd_id.to_string(),
        ok,
        ts_exec,
        err,
        payload: doc.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    use super::*;
    use crate::envelope::Reason;
    use crate::stage::normalize::stage::{ack_stage, normalized, rejected};

    fn ack(payload: &str) -> AckRow {
        match normalized(&ack_stage(), payload) {
            Body::Ack(row) => row,
            other => panic!("expected an ack, got {other:?}"),
        }
    }

    #[test]
    fn contract_example() {
        let payload = r#"{"schema":"v1","cmd_id":"01HQZC5K3M8YBQWER7TXZ9V2P3","ok":true,"ts_exec":"2025-10-07T15:30:00Z","err":null}"#;
        assert_eq!(
            ack(payload),
            AckRow {
                cmd_id: "01HQZC5K3M8YBQWER7TXZ9V2P3".into(),
                ok: true,
                ts_exec: Utc.with_ymd_and_hms(2025, 10, 7, 15, 30, 0).single(),
                err: None,
                // Keys stay in the order the device sent them.
                payload: payload.into(),
            }
        );
    }

    #[test]
    fn optional_fields_may_be_absent_and_extras_are_kept() {
        let row = ack(r#"{"cmd_id":"c1","ok":false,"err":"valve stuck","extra":[1]}"#);
        assert_eq!(
            row,
            AckRow {
                cmd_id: "c1".into(),
                ok: false,
                ts_exec: None,
                err: Some("valve stuck".into()),
                payload: r#"{"cmd_id":"c1","ok":false,"err":"valve stuck","extra":[1]}"#.into(),
            }
        );
    }

    #[test]
    fn ts_exec_offset_becomes_utc() {
        let row = ack(r#"{"cmd_id":"c1","ok":true,"ts_exec":"2025-10-07T12:30:00.5-03:00"}"#);
        let expected = Utc
            .with_ymd_and_hms(2025, 10, 7, 15, 30, 0)
            .single()
            .map(|t| t + chrono::Duration::milliseconds(500));
        assert_eq!(row.ts_exec, expected);
    }

    #[test]
    fn ack_without_cmd_id_is_a_schema_error() {
        let r = rejected(
            &ack_stage(),
            br#"{"schema":"v1","ok":true}"#,
            Reason::SchemaError,
        );
        assert_eq!(r.detail, r#"ack_v1: /: "cmd_id" is a required property"#);
        let r = rejected(
            &ack_stage(),
            br#"{"schema":"v1","cmd_id":"","ok":true}"#,
            Reason::SchemaError,
        );
        assert_eq!(
            r.detail,
            r#"ack_v1: /cmd_id: "" is shorter than 1 character"#
        );
        // Without a `schema` field it is recognised by its schema, or not at all.
        let r = rejected(&ack_stage(), br#"{"ok":true}"#, Reason::UnknownSchema);
        assert_eq!(
            r.detail,
            "no `schema` field and the payload matches none of: v1"
        );
    }

    #[test]
    fn ack_with_bad_ts_exec_is_bad_timestamp() {
        let r = rejected(
            &ack_stage(),
            br#"{"schema":"v1","cmd_id":"c1","ok":true,"ts_exec":"2025-10-07T15:30:00"}"#,
            Reason::BadTimestamp,
        );
        assert!(
            r.detail
                .starts_with(r#"/ts_exec: "2025-10-07T15:30:00" has no time zone"#),
            "{}",
            r.detail
        );
        let r = rejected(
            &ack_stage(),
            br#"{"schema":"v1","cmd_id":"c1","ok":true,"ts_exec":"soon"}"#,
            Reason::BadTimestamp,
        );
        assert!(
            r.detail
                .starts_with(r#"/ts_exec: "soon" is not a timestamp"#),
            "{}",
            r.detail
        );
    }

    #[test]
    fn the_normalizer_does_not_trust_the_schema() {
        let cases = [
            (json!({"ok": true}), "/cmd_id: required field is missing"),
            (
                json!({"cmd_id": "x".repeat(129), "ok": true}),
                "/cmd_id: expected a string of 1 to 128 characters",
            ),
            (
                json!({"cmd_id": "c", "ok": "yes"}),
                "/ok: expected a boolean, got \"yes\" (a string)",
            ),
            (
                json!({"cmd_id": "c", "ok": true, "err": 5}),
                "/err: expected a string, got 5 (a number)",
            ),
        ];
        for (doc, expected) in cases {
            let r = normalize(&doc).expect_err(expected);
            assert_eq!(r.reason, Reason::SchemaError);
            assert!(r.detail.starts_with(expected), "{}", r.detail);
        }
    }
}
