//! Strict JSON parsing of payload bytes, and showing JSON back to people.
//!
//! Owns the one step from the exact bytes a device sent to a
//! [`serde_json::Value`]: the first stage that needs JSON calls
//! [`ensure_json`], and later stages reuse the parsed document. Parsing is
//! stricter than `serde_json::from_slice`: a payload must be UTF-8, a single
//! JSON document, and no object may repeat a key (serde_json would silently
//! keep the last one, so two firmwares could disagree on what a message
//! says). Duplicate keys are caught while deserializing, by a visitor that
//! builds the `Value` itself, so a payload is read once. NaN and Infinity are
//! not JSON and serde_json already refuses them. Every failure is a
//! `parse_error` value whose detail says where (byte offset, or line and
//! column and JSON path) and what.
//!
//! It also owns [`excerpt`] and [`truncate`], which every stage uses to quote
//! an offending value in a detail without copying a 256 KiB string into the
//! dead-letter table.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::map::Entry;
use serde_json::{Map, Number, Value};

use crate::envelope::{Body, Envelope, Reason, Rejection};

/// Room for keys in a new object before it grows.
const OBJECT_CAPACITY: usize = 4;

/// Longest quoted value in a detail, in characters: enough to recognise it.
const EXCERPT_CHARS: usize = 80;

/// Parses payload bytes into one JSON document, refusing what is not UTF-8,
/// not JSON, or has an object with a repeated key; so that no later stage
/// ever sees an ambiguous document.
pub fn parse_payload(payload: &[u8]) -> Result<Value, Rejection> {
    if payload.is_empty() {
        return Err(parse_error(
            "empty payload: expected a JSON document".to_string(),
        ));
    }
    let text = std::str::from_utf8(payload).map_err(|e| {
        parse_error(format!(
            "payload is not UTF-8: invalid byte 0x{:02x} at byte offset {}",
            payload.get(e.valid_up_to()).copied().unwrap_or_default(),
            e.valid_up_to()
        ))
    })?;
    let mut de = serde_json::Deserializer::from_str(text);
    let value = ValueSeed { path: &Path::Root }
        .deserialize(&mut de)
        .and_then(|value| de.end().map(|()| value))
        .map_err(|e| {
            let prefix = match e.classify() {
                serde_json::error::Category::Data => "",
                _ => "not JSON: ",
            };
            parse_error(format!("{prefix}{e}"))
        })?;
    Ok(value)
}

/// Makes sure the envelope's body is parsed JSON, parsing the raw payload at
/// most once per message whichever stage asks first. A body that is already
/// JSON, rows or a rejection is passed on untouched.
// The rejected envelope is the error value: it travels on to the
// dead-letter sink whole, as `Ok` travels on to the next stage; both
// variants are the same size, so boxing would only add an allocation.
#[allow(clippy::result_large_err)]
pub fn ensure_json(mut envelope: Envelope) -> Result<Envelope, Envelope> {
    if !matches!(envelope.body, Body::Raw) {
        return Ok(envelope);
    }
    match parse_payload(&envelope.payload) {
        Ok(value) => {
            envelope.body = Body::Json(value);
            Ok(envelope)
        }
        Err(rejection) => Err(envelope.reject(rejection.reason, rejection.detail)),
    }
}

/// Shows a JSON value in a detail, as JSON, cut to a readable length; so a
/// person sees what was sent without the dead letter repeating the payload.
pub fn excerpt(value: &Value) -> String {
    truncate(&value.to_string(), EXCERPT_CHARS)
}

/// Cuts `text` to at most `max_chars` characters, saying how much was cut;
/// never splits a UTF-8 character.
pub fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        None => text.to_string(),
        Some((end, _)) => {
            let more = text.chars().count() - max_chars;
            format!("{}… ({more} more characters)", &text[..end])
        }
    }
}

/// Escapes one JSON-Pointer reference token (RFC 6901): `~` and `/`.
pub fn pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn parse_error(detail: String) -> Rejection {
    Rejection {
        reason: Reason::ParseError,
        detail,
    }
}

/// Where the visitor is in the document, as a linked list on the stack: no
/// allocation unless an error needs the path rendered.
enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl fmt::Display for Path<'_> {
    /// Renders the JSON-Pointer of this place (`/` for the root).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => f.write_str("/"),
            Path::Key(parent, key) => {
                parent.write_prefix(f)?;
                write!(f, "/{}", pointer_token(key))
            }
            Path::Index(parent, index) => {
                parent.write_prefix(f)?;
                write!(f, "/{index}")
            }
        }
    }
}

impl Path<'_> {
    /// Writes this place as the prefix of a child's pointer (empty for root).
    fn write_prefix(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            other => fmt::Display::fmt(other, f),
        }
    }
}

/// Builds a `Value` like serde_json's own, refusing repeated object keys.
/// serde_json's recursion limit still applies, since depth is counted by the
/// deserializer, not by us.
struct ValueSeed<'a> {
    path: &'a Path<'a>,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom(format!("{v} at {} is not a JSON number", self.path)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        loop {
            let path = Path::Index(self.path, items.len());
            match seq.next_element_seed(ValueSeed { path: &path })? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        // Sized for the payload formats' objects (a v1 point has 4 keys),
        // so most never grow; each key is hashed once, by `entry`.
        let mut map = Map::with_capacity(OBJECT_CAPACITY);
        while let Some(key) = access.next_key::<String>()? {
            match map.entry(key) {
                Entry::Vacant(slot) => {
                    let path = Path::Key(self.path, slot.key());
                    let value = access.next_value_seed(ValueSeed { path: &path })?;
                    slot.insert(value);
                }
                Entry::Occupied(slot) => {
                    let path = Path::Key(self.path, slot.key());
                    return Err(de::Error::custom(format!(
                        "duplicate key {:?} (JSON path {path}); a key may appear once per object",
                        slot.key()
                    )));
                }
            }
        }
        Ok(Value::Object(map))
    }
}

/// An envelope as the source would hand it over, for stage tests.
#[cfg(test)]
pub(crate) fn test_envelope(payload: &[u8]) -> Envelope {
    use std::sync::Arc;
    Envelope {
        topic: Arc::from("traksense/t1/s1/d1/telem"),
        captures: crate::envelope::Captures::default(),
        payload: bytes::Bytes::copy_from_slice(payload),
        received_at: chrono::Utc::now(),
        body: Body::Raw,
        token: crate::delivery::DeliveryToken::detached(),
    }
}

/// The rejection a stage put in an envelope, failing the test otherwise.
#[cfg(test)]
pub(crate) fn rejection_of(envelope: Envelope) -> Rejection {
    match envelope.body {
        Body::Rejected(rejection) => rejection,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse_err(payload: &[u8]) -> Rejection {
        match parse_payload(payload) {
            Ok(v) => panic!("expected a parse error, got {v}"),
            Err(r) => {
                assert_eq!(r.reason, Reason::ParseError, "{}", r.detail);
                r
            }
        }
    }

    #[test]
    fn parses_nested_documents_like_serde_json() {
        let text = br#"{"a":[1,-2,3.5,true,null,"x",{"b":{}}],"c":18446744073709551615}"#;
        let ours = parse_payload(text).expect("valid JSON");
        let theirs: Value = serde_json::from_slice(text).expect("valid JSON");
        assert_eq!(ours, theirs);
        assert_eq!(ours["c"], json!(18446744073709551615u64));
    }

    #[test]
    fn empty_payload_is_a_parse_error() {
        assert!(parse_err(b"").detail.contains("empty payload"));
        assert!(parse_err(b"  \n").detail.contains("EOF"));
    }

    #[test]
    fn non_utf8_reports_the_byte_offset() {
        let r = parse_err(b"{\"a\":\"\xff\"}");
        assert!(r.detail.contains("not UTF-8"), "{}", r.detail);
        assert!(r.detail.contains("byte offset 6"), "{}", r.detail);
        assert!(r.detail.contains("0xff"), "{}", r.detail);
    }

    #[test]
    fn invalid_json_reports_line_and_column() {
        let r = parse_err(b"{\"a\":\n 1,}");
        assert!(r.detail.starts_with("not JSON: "), "{}", r.detail);
        assert!(r.detail.contains("line 2 column 4"), "{}", r.detail);
        let r = parse_err(b"{\"a\":1} x");
        assert!(r.detail.contains("trailing characters"), "{}", r.detail);
        let r = parse_err(b"{\"v\":NaN}");
        assert!(r.detail.contains("line 1 column 6"), "{}", r.detail);
    }

    #[test]
    fn duplicate_key_names_key_and_path() {
        let r = parse_err(br#"{"ts":"a","ts":"b"}"#);
        assert_eq!(
            r.detail,
            "duplicate key \"ts\" (JSON path /ts); a key may appear once per object \
             at line 1 column 14"
        );
    }

    #[test]
    fn nested_duplicate_key_names_the_full_path() {
        let r = parse_err(br#"{"points":[{"name":"a","v":1},{"name":"b","v":1,"v":2}]}"#);
        assert!(r.detail.contains("duplicate key \"v\""), "{}", r.detail);
        assert!(r.detail.contains("/points/1/v"), "{}", r.detail);
        let r = parse_err(br#"{"a/b":{"m~n":{"k":1,"k":1}}}"#);
        assert!(r.detail.contains("/a~1b/m~0n/k"), "{}", r.detail);
    }

    #[test]
    fn same_key_in_sibling_objects_is_fine() {
        let v = parse_payload(br#"[{"a":1},{"a":2}]"#).expect("valid");
        assert_eq!(v, json!([{"a":1},{"a":2}]));
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = "[".repeat(100_000);
        let r = parse_err(deep.as_bytes());
        assert!(r.detail.contains("recursion limit"), "{}", r.detail);
    }

    #[test]
    fn ensure_json_parses_once_and_rejects_with_parse_error() {
        let e = ensure_json(test_envelope(br#"{"a":1}"#)).expect("valid");
        assert!(matches!(&e.body, Body::Json(v) if *v == json!({"a":1})));
        let e = ensure_json(e).expect("already JSON");
        assert!(matches!(&e.body, Body::Json(_)));

        let rejected = ensure_json(test_envelope(b"nope")).expect_err("not JSON");
        assert_eq!(&rejected.payload[..], b"nope", "payload kept for the DLQ");
        assert_eq!(rejection_of(rejected).reason, Reason::ParseError);
    }

    #[test]
    fn truncate_cuts_on_characters() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("°°°°", 2), "°°… (2 more characters)");
        let long = json!("x".repeat(500));
        assert!(excerpt(&long).len() < 120);
    }
}
