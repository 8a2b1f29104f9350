//! Reading fields of a parsed document with the rejections a person can act
//! on: each names the JSON-Pointer, the rule and the offending value.
//!
//! The formats check every field they read even though their JSON Schema
//! ran first: a pipeline file may pair a format with a looser schema, and a
//! malformed payload must never become a row. Paths are built only when a
//! rejection needs one, so a valid message costs no allocation here.

use serde_json::{Map, Value};

use crate::envelope::{Reason, Rejection};
use crate::stage::parse::{excerpt, pointer_token};

/// The JSON type of a value with its article, as a detail says it.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A `schema_error` for `value` at `path` breaking `rule`, e.g.
/// `/points/0/v: t "int" needs an integer, got 2.5 (a number)`.
pub fn broken(path: &str, rule: &str, value: &Value) -> Rejection {
    Rejection {
        reason: Reason::SchemaError,
        detail: format!("{path}: {rule}, got {} ({})", excerpt(value), kind(value)),
    }
}

/// A `schema_error` for a required field that is absent.
pub fn missing(path: &str) -> Rejection {
    Rejection {
        reason: Reason::SchemaError,
        detail: format!("{path}: required field is missing"),
    }
}

/// The document as an object: every format's payload is one.
pub fn root_object(doc: &Value) -> Result<&Map<String, Value>, Rejection> {
    doc.as_object()
        .ok_or_else(|| broken("/", "expected a JSON object", doc))
}

/// A top-level field that must be present.
pub fn required<'a>(object: &'a Map<String, Value>, key: &str) -> Result<&'a Value, Rejection> {
    object.get(key).ok_or_else(|| missing(&top_path(key)))
}

/// An optional top-level string field; `null` counts as absent.
pub fn optional_str<'a>(
    object: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a str>, Rejection> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(other) => Err(broken(&top_path(key), "expected a string", other)),
    }
}

/// A string of 1 to `max` characters (not bytes: `°C` is two).
pub fn bounded_str<'a>(value: &'a Value, max: usize, path: &str) -> Result<&'a str, Rejection> {
    match value.as_str() {
        Some(text) if !text.is_empty() && text.chars().count() <= max => Ok(text),
        _ => Err(broken(
            path,
            &format!("expected a string of 1 to {max} characters"),
            value,
        )),
    }
}

/// The values of `keys` in `object`, in the order of `keys`, found in one
/// pass over its entries: a payload object has a handful of keys, and
/// comparing them is cheaper than hashing each key looked up (serde_json's
/// ordered map hashes with SipHash).
pub fn pick<'a, const N: usize>(
    object: &'a Map<String, Value>,
    keys: [&str; N],
) -> [Option<&'a Value>; N] {
    let mut found = [None; N];
    for (key, value) in object {
        if let Some(i) = keys.iter().position(|k| k == key) {
            found[i] = Some(value);
        }
    }
    found
}

/// The JSON-Pointer of a top-level field.
pub fn top_path(key: &str) -> String {
    format!("/{}", pointer_token(key))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn details_name_path_rule_and_value() {
        let r = broken("/points/0/v", "t \"int\" needs an integer", &json!(2.5));
        assert_eq!(r.reason, Reason::SchemaError);
        assert_eq!(
            r.detail,
            "/points/0/v: t \"int\" needs an integer, got 2.5 (a number)"
        );
        let object = json!({"a/b": 1});
        let object = root_object(&object).expect("object");
        assert_eq!(
            required(object, "x").expect_err("absent").detail,
            "/x: required field is missing"
        );
        assert_eq!(top_path("a/b"), "/a~1b");
        assert!(root_object(&json!([]))
            .expect_err("array")
            .detail
            .starts_with("/: "));
    }

    #[test]
    fn pick_finds_each_key_or_none() {
        let object = json!({"v": 1, "name": "a", "x": true});
        let object = root_object(&object).expect("object");
        assert_eq!(
            pick(object, ["name", "v", "t"]),
            [Some(&json!("a")), Some(&json!(1)), None]
        );
    }

    #[test]
    fn bounded_str_counts_characters() {
        assert_eq!(bounded_str(&json!("°°"), 2, "/n"), Ok("°°"));
        assert!(bounded_str(&json!("°°°"), 2, "/n").is_err());
        assert!(bounded_str(&json!(""), 2, "/n").is_err());
        assert!(bounded_str(&json!(1), 2, "/n").is_err());
    }
}
