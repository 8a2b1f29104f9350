//! The normalize stage: chooses the format of each payload, checks it
//! against that format's JSON Schema, and replaces the JSON body with rows.
//!
//! A payload names its format in one field (`by`, e.g. `"schema"`). Devices
//! that cannot send it (Parsec firmware) are recognised by their schema:
//! only the formats listed in `detect` are tried, in order, and only when
//! the field is absent; a field that is present is never second-guessed.
//! Nothing is guessed beyond that: a payload matching no declared format is
//! `unknown_schema`, one breaking its format's schema is `schema_error`.

use serde_json::Value;

use crate::envelope::{Body, Envelope, Reason, Rejection};
use crate::stage::json_schema::JsonSchema;
use crate::stage::parse::{ensure_json, excerpt, pointer_token};

use super::fields::{kind, root_object};
use super::format::Format;

/// One selectable format of a normalize stage.
#[derive(Debug)]
pub struct FormatSpec {
    /// Value of the `by` field that selects it.
    pub selector: String,
    /// The format.
    pub format: Format,
    /// Its schema: checked before the format reads the document, and used
    /// to recognise payloads without a `by` field.
    pub schema: JsonSchema,
}

/// A compiled normalize stage.
#[derive(Debug)]
pub struct Normalize {
    /// The top-level field naming the format, e.g. `schema`.
    by: String,
    /// The formats, in the pipeline file's order.
    formats: Vec<FormatSpec>,
    /// Indexes into `formats` tried, in order, when `by` is absent.
    detect: Vec<usize>,
}

impl Normalize {
    /// Builds the stage. `detect` lists selectors tried when a payload has
    /// no `by` field; the pipeline compiler checks that each names one of
    /// `formats` (one that does not is ignored here).
    pub fn new(by: String, formats: Vec<FormatSpec>, detect: Vec<String>) -> Normalize {
        let detect = detect
            .iter()
            .filter_map(|name| formats.iter().position(|spec| spec.selector == *name))
            .collect();
        Normalize {
            by,
            formats,
            detect,
        }
    }

    /// The top-level field naming the format.
    pub fn by(&self) -> &str {
        &self.by
    }

    /// The formats, in the pipeline file's order.
    pub fn formats(&self) -> &[FormatSpec] {
        &self.formats
    }

    /// The formats tried by their schema when a payload has no `by` field.
    pub fn detected_formats(&self) -> impl Iterator<Item = &FormatSpec> {
        self.detect.iter().filter_map(|&i| self.formats.get(i))
    }

    /// Normalizes one envelope: its body becomes `Body::Measures` or
    /// `Body::Ack`, or it is rejected. A body that is neither raw nor JSON
    /// (rows already, or a rejection) is passed on untouched.
    // The rejected envelope is the error value: it travels on to the
    // dead-letter sink whole, as `Ok` travels on to the next stage; both
    // variants are the same size, so boxing would only add an allocation.
    #[allow(clippy::result_large_err)]
    pub fn process(&self, envelope: Envelope) -> Result<Envelope, Envelope> {
        let mut envelope = ensure_json(envelope)?;
        let Body::Json(doc) = &envelope.body else {
            return Ok(envelope);
        };
        match self.normalize(doc) {
            Ok(body) => {
                envelope.body = body;
                Ok(envelope)
            }
            Err(rejection) => Err(envelope.reject(rejection.reason, rejection.detail)),
        }
    }

    /// Selects, validates and normalizes one document.
    fn normalize(&self, doc: &Value) -> Result<Body, Rejection> {
        let object = root_object(doc)?;
        let spec = match object.get(&self.by) {
            Some(selector) => {
                let spec = self.by_selector(selector)?;
                spec.schema.validate(doc).map_err(|detail| Rejection {
                    reason: Reason::SchemaError,
                    detail: format!("{}: {detail}", spec.format.name()),
                })?;
                spec
            }
            None => self.detected(doc)?,
        };
        spec.format.normalize(doc)
    }

    /// The spec the `by` field names, or `unknown_schema`.
    fn by_selector(&self, selector: &Value) -> Result<&FormatSpec, Rejection> {
        let path = format!("/{}", pointer_token(&self.by));
        let Some(name) = selector.as_str() else {
            return Err(unknown(format!(
                "{path}: expected a string naming the format, got {} ({}); known: {}",
                excerpt(selector),
                kind(selector),
                self.known()
            )));
        };
        self.formats
            .iter()
            .find(|spec| spec.selector == name)
            .ok_or_else(|| {
                unknown(format!(
                    "{path}: {} is not a known format; known: {}",
                    excerpt(selector),
                    self.known()
                ))
            })
    }

    /// The first `detect` spec whose schema the document satisfies (it is
    /// then already validated), or `unknown_schema`.
    fn detected(&self, doc: &Value) -> Result<&FormatSpec, Rejection> {
        let candidates = || self.detect.iter().filter_map(|&i| self.formats.get(i));
        if let Some(spec) = candidates().find(|spec| spec.schema.is_valid(doc)) {
            return Ok(spec);
        }
        let tried: Vec<&str> = candidates().map(|spec| spec.selector.as_str()).collect();
        Err(unknown(if tried.is_empty() {
            format!(
                "no `{}` field, and this stage recognises no format without one; known: {}",
                self.by,
                self.known()
            )
        } else {
            format!(
                "no `{}` field and the payload matches none of: {}",
                self.by,
                tried.join(", ")
            )
        }))
    }

    /// The selectors, quoted, for details.
    fn known(&self) -> String {
        let names: Vec<String> = self
            .formats
            .iter()
            .map(|spec| format!("{:?}", spec.selector))
            .collect();
        names.join(", ")
    }
}

fn unknown(detail: String) -> Rejection {
    Rejection {
        reason: Reason::UnknownSchema,
        detail,
    }
}

/// A stage built from the shipped schema files, as `pipelines/traksense.yaml`
/// declares it: `schema` selects `v1` or `parsec_v1`; Parsec payloads
/// without it are detected. For tests of every format.
#[cfg(test)]
pub(crate) fn telemetry_stage() -> Normalize {
    Normalize::new(
        "schema".into(),
        vec![
            spec("v1", Format::V1, "telem.v1.json"),
            spec("parsec_v1", Format::ParsecV1, "parsec_v1.json"),
        ],
        vec!["parsec_v1".into()],
    )
}

/// The ACK stage: `"schema": "v1"` selects `ack_v1`; ACKs without the
/// field are recognised by the ACK schema.
#[cfg(test)]
pub(crate) fn ack_stage() -> Normalize {
    Normalize::new(
        "schema".into(),
        vec![spec("v1", Format::AckV1, "ack.v1.json")],
        vec!["v1".into()],
    )
}

#[cfg(test)]
fn spec(selector: &str, format: Format, file: &str) -> FormatSpec {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schemas")
        .join(file);
    FormatSpec {
        selector: selector.into(),
        format,
        schema: JsonSchema::load(&path).expect("shipped schema compiles"),
    }
}

/// Runs `stage` on a payload that must normalize, returning its body.
#[cfg(test)]
pub(crate) fn normalized(stage: &Normalize, payload: &str) -> Body {
    use crate::stage::parse::{rejection_of, test_envelope};
    match stage.process(test_envelope(payload.as_bytes())) {
        Ok(envelope) => envelope.body,
        Err(envelope) => panic!("{payload}: rejected: {:?}", rejection_of(envelope)),
    }
}

/// Runs `stage` on a payload that must be rejected, checking the reason.
#[cfg(test)]
pub(crate) fn rejected(stage: &Normalize, payload: &[u8], reason: Reason) -> Rejection {
    use crate::stage::parse::{rejection_of, test_envelope};
    match stage.process(test_envelope(payload)) {
        Ok(envelope) => panic!("expected {reason}, got {:?}", envelope.body),
        Err(envelope) => {
            let rejection = rejection_of(envelope);
            assert_eq!(rejection.reason, reason, "{}", rejection.detail);
            rejection
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::MeasureRow;
    use crate::stage::parse::test_envelope;

    const PARSEC: &str = r#"{"ts":"2025-10-07T15:30:00Z","di1":1,"di2":0}"#;

    fn points(body: Body) -> Vec<String> {
        match body {
            Body::Measures(rows) => rows.into_iter().map(|r: MeasureRow| r.point).collect(),
            other => panic!("expected measures, got {other:?}"),
        }
    }

    #[test]
    fn the_schema_field_selects_the_format() {
        let stage = telemetry_stage();
        let v1 = r#"{"schema":"v1","ts":"2025-10-07T15:30:00Z","points":[{"name":"a","v":1}]}"#;
        assert_eq!(points(normalized(&stage, v1)), ["a"]);
        let parsec = r#"{"schema":"parsec_v1","ts":"2025-10-07T15:30:00Z","di1":1,"di2":0}"#;
        assert_eq!(points(normalized(&stage, parsec)), ["status", "fault"]);
    }

    #[test]
    fn a_payload_without_schema_field_is_detected() {
        assert_eq!(
            points(normalized(&telemetry_stage(), PARSEC)),
            ["status", "fault"]
        );
    }

    #[test]
    fn detection_applies_only_to_the_listed_formats() {
        // A v1 document without `schema` is not detected: only parsec_v1 is.
        let r = rejected(
            &telemetry_stage(),
            br#"{"ts":"2025-10-07T15:30:00Z","points":[{"name":"a","v":1}]}"#,
            Reason::UnknownSchema,
        );
        assert_eq!(
            r.detail,
            "no `schema` field and the payload matches none of: parsec_v1"
        );
    }

    #[test]
    fn an_unknown_schema_value_lists_the_known_ones() {
        let r = rejected(
            &telemetry_stage(),
            br#"{"schema":"v9","ts":"x"}"#,
            Reason::UnknownSchema,
        );
        assert_eq!(
            r.detail,
            r#"/schema: "v9" is not a known format; known: "v1", "parsec_v1""#
        );
        let r = rejected(
            &telemetry_stage(),
            br#"{"schema":2}"#,
            Reason::UnknownSchema,
        );
        assert_eq!(
            r.detail,
            r#"/schema: expected a string naming the format, got 2 (a number); known: "v1", "parsec_v1""#
        );
    }

    #[test]
    fn a_present_schema_field_is_never_second_guessed() {
        // Valid parsec_v1, but it says v1: it must break v1's schema.
        let payload = br#"{"schema":"v1","ts":"2025-10-07T15:30:00Z","di1":1,"di2":0}"#;
        let r = rejected(&telemetry_stage(), payload, Reason::SchemaError);
        assert_eq!(r.detail, r#"v1: /: "points" is a required property"#);
    }

    #[test]
    fn schema_errors_are_prefixed_with_the_format() {
        let r = rejected(
            &telemetry_stage(),
            br#"{"schema":"parsec_v1","ts":"2025-10-07T15:30:00Z","di1":2,"di2":0}"#,
            Reason::SchemaError,
        );
        assert_eq!(r.detail, "parsec_v1: /di1: 2 is not one of 0 or 1");
    }

    #[test]
    fn the_document_must_be_an_object() {
        let r = rejected(&telemetry_stage(), b"[1,2]", Reason::SchemaError);
        assert_eq!(r.detail, "/: expected a JSON object, got [1,2] (an array)");
    }

    #[test]
    fn parse_errors_come_first() {
        rejected(&telemetry_stage(), b"", Reason::ParseError);
        rejected(&telemetry_stage(), b"\xc3\x28", Reason::ParseError);
        let r = rejected(
            &telemetry_stage(),
            br#"{"schema":"v1","schema":"v1"}"#,
            Reason::ParseError,
        );
        assert!(
            r.detail.contains("duplicate key \"schema\""),
            "{}",
            r.detail
        );
    }

    #[test]
    fn without_detection_a_missing_field_says_so() {
        let stage = Normalize::new(
            "schema".into(),
            vec![spec("v1", Format::V1, "telem.v1.json")],
            vec!["nonexistent".into()],
        );
        let r = rejected(&stage, PARSEC.as_bytes(), Reason::UnknownSchema);
        assert_eq!(
            r.detail,
            r#"no `schema` field, and this stage recognises no format without one; known: "v1""#
        );
    }

    #[test]
    fn rows_already_made_pass_untouched() {
        let mut envelope = test_envelope(b"not json");
        envelope.body = Body::Measures(Vec::new());
        let envelope = telemetry_stage().process(envelope).expect("passes");
        assert!(matches!(envelope.body, Body::Measures(ref rows) if rows.is_empty()));
    }
}
