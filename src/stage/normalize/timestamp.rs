//! Device timestamps: RFC 3339 with `Z` or an offset, to UTC.
//!
//! A timestamp without a zone is refused rather than guessed (device clocks
//! sit in every zone, and a wrong guess silently shifts a series by hours);
//! so is anything that is not a timestamp. Both are `bad_timestamp`, with the
//! path, the value and an example of what is expected. Every format reads
//! its timestamps here, so they all accept the same spellings.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::Value;

use crate::envelope::{Reason, Rejection};
use crate::stage::parse::excerpt;

use super::fields::kind;

/// What a detail says is expected.
const HINT: &str = "expected RFC 3339 with a zone, e.g. 2025-10-07T15:30:00Z";

/// Parses the timestamp at `path` (a JSON-Pointer, for the detail) into UTC.
/// Fractional seconds are kept; an offset like `+02:00` is converted.
pub fn parse_ts(value: &Value, path: &str) -> Result<DateTime<Utc>, Rejection> {
    let Some(text) = value.as_str() else {
        return Err(bad(format!(
            "{path}: {} ({}) is not a timestamp string; {HINT}",
            excerpt(value),
            kind(value)
        )));
    };
    match DateTime::parse_from_rfc3339(text) {
        Ok(ts) => Ok(ts.with_timezone(&Utc)),
        Err(_) if lacks_zone(text) => Err(bad(format!(
            "{path}: {} has no time zone; {HINT}",
            excerpt(value)
        ))),
        Err(e) => Err(bad(format!(
            "{path}: {} is not a timestamp ({e}); {HINT}",
            excerpt(value)
        ))),
    }
}

/// Whether `text` is a date and time that would be valid with a zone.
fn lacks_zone(text: &str) -> bool {
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .any(|format| NaiveDateTime::parse_from_str(text, format).is_ok())
}

fn bad(detail: String) -> Rejection {
    Rejection {
        reason: Reason::BadTimestamp,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        parse_ts(&json!(s), "/ts").expect(s)
    }

    #[test]
    fn accepts_z_offsets_and_fractions() {
        let expected = Utc
            .with_ymd_and_hms(2025, 10, 7, 15, 30, 0)
            .single()
            .expect("valid");
        assert_eq!(utc("2025-10-07T15:30:00Z"), expected);
        assert_eq!(utc("2025-10-07T17:30:00+02:00"), expected);
        assert_eq!(utc("2025-10-07T12:00:00-03:30"), expected);
        assert_eq!(
            utc("2025-10-07T15:30:00.123456Z"),
            expected + chrono::Duration::microseconds(123_456)
        );
    }

    #[test]
    fn timestamp_without_zone_is_bad_timestamp() {
        for text in [
            "2025-10-07T15:30:00",
            "2025-10-07T15:30:00.5",
            "2025-10-07 15:30:00",
        ] {
            let r = parse_ts(&json!(text), "/points/3/ts").expect_err(text);
            assert_eq!(r.reason, Reason::BadTimestamp);
            assert_eq!(
                r.detail,
                format!("/points/3/ts: \"{text}\" has no time zone; {HINT}")
            );
        }
    }

    #[test]
    fn non_timestamps_are_bad_timestamp() {
        let r = parse_ts(&json!("yesterday"), "/ts").expect_err("words");
        assert_eq!(r.reason, Reason::BadTimestamp);
        assert!(
            r.detail
                .starts_with("/ts: \"yesterday\" is not a timestamp ("),
            "{}",
            r.detail
        );
        assert!(r.detail.ends_with(HINT), "{}", r.detail);

        let r = parse_ts(&json!("2025-13-07T15:30:00Z"), "/ts").expect_err("month 13");
        assert!(r.detail.contains("is not a timestamp"), "{}", r.detail);

        let r = parse_ts(&json!(1_728_315_000), "/ts_exec").expect_err("number");
        assert_eq!(r.reason, Reason::BadTimestamp);
        assert!(
            r.detail
                .starts_with("/ts_exec: 1728315000 (a number) is not a timestamp string"),
            "{}",
            r.detail
        );
    }
}
