//! The `json_schema` stage: validates each payload against one JSON Schema.
//!
//! Owns loading a schema file (read and compiled once, at pipeline compile,
//! so a broken schema stops the runner before it subscribes) and turning a
//! failed validation into a `schema_error` detail a person can act on: the
//! JSON-Pointer of each offending place and the rule it breaks, at most
//! [`MAX_ERRORS`] of them. A schema without `$schema` is read as draft
//! 2020-12. The normalize stage reuses [`JsonSchema`] for its formats.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::envelope::{Body, Envelope, Reason};

use super::parse::{ensure_json, excerpt, truncate};

/// Most validation errors reported per message: enough to fix a payload,
/// few enough to read in one dead-letter row.
pub const MAX_ERRORS: usize = 5;

/// Longest single validation message, in characters, as a last guard: the
/// value is already quoted as an excerpt, but a rule (an `enum` list) may be
/// long too.
const MAX_MESSAGE_CHARS: usize = 300;

/// Why a schema file could not be used; reported at pipeline compile.
#[derive(Debug, thiserror::Error)]
pub enum SchemaLoadError {
    /// The file could not be read (missing, permissions…).
    #[error("{}: cannot read JSON Schema file: {source}", path.display())]
    Unreadable {
        /// The schema file as configured.
        path: PathBuf,
        /// Why reading failed.
        source: std::io::Error,
    },
    /// The file is not JSON.
    #[error("{}:{line}:{column}: JSON Schema file is not JSON: {message}", path.display())]
    NotJson {
        /// The schema file as configured.
        path: PathBuf,
        /// 1-based line of the syntax error.
        line: usize,
        /// 1-based column of the syntax error.
        column: usize,
        /// serde_json's description of the error, without its position.
        message: String,
    },
    /// The file is JSON but not a valid JSON Schema.
    #[error("{}: not a valid JSON Schema: {message}", path.display())]
    Invalid {
        /// The schema file as configured.
        path: PathBuf,
        /// The validator's message, with the place in the schema.
        message: String,
    },
}

/// A compiled JSON Schema, and the `json_schema` stage built on it.
pub struct JsonSchema {
    /// The file (or name) it came from, for logs.
    name: String,
    /// Compiled once; validation reuses it for every message.
    validator: jsonschema::Validator,
}

impl fmt::Debug for JsonSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The validator's own Debug prints the whole compiled tree.
        f.debug_struct("JsonSchema")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl JsonSchema {
    /// Reads and compiles a schema file, so the pipeline fails at start-up,
    /// not per message, when a schema is broken.
    pub fn load(path: &Path) -> Result<JsonSchema, SchemaLoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| SchemaLoadError::Unreadable {
            path: path.to_path_buf(),
            source,
        })?;
        let schema: Value = serde_json::from_str(&text).map_err(|e| SchemaLoadError::NotJson {
            path: path.to_path_buf(),
            line: e.line(),
            column: e.column(),
            message: without_position(&e),
        })?;
        Self::from_value(&schema, &path.display().to_string())
    }

    /// Compiles a schema already in memory; `name` stands for its path in
    /// errors. For tests and embedded schemas.
    pub fn from_value(schema: &Value, name: &str) -> Result<JsonSchema, SchemaLoadError> {
        let mut options = jsonschema::options();
        if schema.get("$schema").is_none() {
            // The crate's default today, made explicit so an upgrade that
            // changes it does not change what our schema files mean.
            options = options.with_draft(jsonschema::Draft::Draft202012);
        }
        let validator = options
            .build(schema)
            .map_err(|e| SchemaLoadError::Invalid {
                path: PathBuf::from(name),
                message: format!("{}: {e}", root_if_empty(e.instance_path().as_str())),
            })?;
        Ok(JsonSchema {
            name: name.to_string(),
            validator,
        })
    }

    /// The file (or name) the schema came from.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether `doc` satisfies the schema; cheaper than [`Self::validate`]
    /// when the errors are not wanted (format detection).
    pub fn is_valid(&self, doc: &Value) -> bool {
        self.validator.is_valid(doc)
    }

    /// Checks `doc`; `Err` holds up to [`MAX_ERRORS`] errors, each as
    /// `"{instance_path}: {message}"`, joined with `; `, ready for a detail.
    pub fn validate(&self, doc: &Value) -> Result<(), String> {
        // The common case, valid, takes the fast path that builds no errors.
        if self.validator.is_valid(doc) {
            return Ok(());
        }
        let mut errors = self.validator.iter_errors(doc);
        let mut parts = Vec::new();
        for error in errors.by_ref().take(MAX_ERRORS) {
            parts.push(format!(
                "{}: {}",
                root_if_empty(error.instance_path().as_str()),
                // The validator quotes the offending value, which may be a
                // whole array of points: quote an excerpt of it instead.
                truncate(
                    &error.masked_with(excerpt(error.instance())).to_string(),
                    MAX_MESSAGE_CHARS
                )
            ));
        }
        if parts.is_empty() {
            return Ok(());
        }
        if errors.next().is_some() {
            parts.push(format!("(more errors after the first {MAX_ERRORS})"));
        }
        Err(parts.join("; "))
    }

    /// Runs the stage: parses the payload if needed, then validates it;
    /// a failure becomes a `schema_error` dead letter. A body that is not
    /// JSON (rows already, or a rejection) is passed on untouched.
    // The rejected envelope is the error value: it travels on to the
    // dead-letter sink whole, as `Ok` travels on to the next stage; both
    // variants are the same size, so boxing would only add an allocation.
    #[allow(clippy::result_large_err)]
    pub fn process(&self, envelope: Envelope) -> Result<Envelope, Envelope> {
        let envelope = ensure_json(envelope)?;
        let Body::Json(doc) = &envelope.body else {
            return Ok(envelope);
        };
        match self.validate(doc) {
            Ok(()) => Ok(envelope),
            Err(detail) => Err(envelope.reject(Reason::SchemaError, detail)),
        }
    }
}

/// The JSON-Pointer of the root is empty; people read `/` better.
fn root_if_empty(pointer: &str) -> &str {
    if pointer.is_empty() {
        "/"
    } else {
        pointer
    }
}

/// serde_json's message without the ` at line L column C` it appends, since
/// [`SchemaLoadError::NotJson`] puts the position first, as `file:line:col`.
fn without_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    match text.strip_suffix(&suffix) {
        Some(message) => message.to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use serde_json::json;

    use super::*;
    use crate::stage::parse::{rejection_of, test_envelope};

    fn telem_schema() -> JsonSchema {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/telem.v1.json");
        JsonSchema::load(&path).expect("shipped schema compiles")
    }

    #[test]
    fn shipped_schemas_compile() {
        for file in ["telem.v1.json", "parsec_v1.json", "ack.v1.json"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("schemas")
                .join(file);
            let schema = JsonSchema::load(&path).expect(file);
            assert!(schema.name().ends_with(file));
        }
    }

    #[test]
    fn valid_document_passes_the_stage_unchanged() {
        let payload =
            br#"{"schema":"v1","ts":"2025-10-07T15:30:00Z","points":[{"name":"a","v":1}]}"#;
        let e = telem_schema()
            .process(test_envelope(payload))
            .expect("valid");
        assert!(matches!(&e.body, Body::Json(v) if v["points"][0]["v"] == json!(1)));
    }

    #[test]
    fn errors_name_the_instance_path_and_the_rule() {
        let schema = telem_schema();
        let doc = json!({"ts": "2025-10-07T15:30:00Z",
                         "points": [{"name": "a", "t": "float", "v": "hot"}]});
        let detail = schema.validate(&doc).expect_err("v does not fit t");
        assert_eq!(detail, "/points/0/v: \"hot\" is not of type \"number\"");

        let detail = schema
            .validate(&json!({"points": []}))
            .expect_err("two errors");
        assert!(
            detail.contains("/: \"ts\" is a required property"),
            "{detail}"
        );
        assert!(
            detail.contains("/points: [] has less than 1 item"),
            "{detail}"
        );
    }

    #[test]
    fn at_most_five_errors_are_reported() {
        let points: Vec<Value> = (0..8).map(|_| json!({"name": "", "v": 1})).collect();
        let detail = telem_schema()
            .validate(&json!({"ts": "x", "points": points}))
            .expect_err("eight bad names");
        assert_eq!(detail.matches("/name: ").count(), MAX_ERRORS, "{detail}");
        assert!(
            detail.ends_with("(more errors after the first 5)"),
            "{detail}"
        );
    }

    #[test]
    fn long_values_are_truncated_in_details() {
        let doc = json!({"ts": "x", "points": [{"name": "a", "t": "int", "v": "y".repeat(5000)}]});
        let detail = telem_schema()
            .validate(&doc)
            .expect_err("string is not integer");
        assert!(detail.starts_with("/points/0/v: \"yyy"), "{detail}");
        assert!(detail.len() < 300, "{}", detail.len());
    }

    #[test]
    fn stage_rejects_with_schema_error_or_parse_error() {
        let schema = telem_schema();
        let r = rejection_of(
            schema
                .process(test_envelope(br#"{"points":[]}"#))
                .expect_err("bad"),
        );
        assert_eq!(r.reason, Reason::SchemaError);
        assert!(r.detail.contains("/points"), "{}", r.detail);
        let r = rejection_of(schema.process(test_envelope(b"{")).expect_err("not JSON"));
        assert_eq!(r.reason, Reason::ParseError);
    }

    #[test]
    fn from_value_defaults_to_draft_2020_12() {
        // `prefixItems` exists only from 2020-12 on.
        let schema =
            JsonSchema::from_value(&json!({"prefixItems": [{"type": "string"}]}), "inline")
                .expect("compiles");
        assert!(schema.validate(&json!(["a", 1])).is_ok());
        assert_eq!(
            schema.validate(&json!([1])),
            Err("/0: 1 is not of type \"string\"".to_string())
        );
    }

    #[test]
    fn load_errors_say_which_file_and_where() {
        let missing = JsonSchema::load(Path::new("/nonexistent/x.json")).expect_err("missing");
        assert!(matches!(missing, SchemaLoadError::Unreadable { .. }));
        assert!(missing
            .to_string()
            .starts_with("/nonexistent/x.json: cannot read"));

        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(b"{\n  \"type\": \"object\",\n}")
            .expect("write");
        let err = JsonSchema::load(file.path()).expect_err("not JSON");
        match &err {
            SchemaLoadError::NotJson {
                line,
                column,
                message,
                ..
            } => {
                assert_eq!((*line, *column), (3, 1));
                assert_eq!(message, "trailing comma");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            err.to_string()
                .contains(":3:1: JSON Schema file is not JSON"),
            "{err}"
        );

        let err = JsonSchema::from_value(&json!({"type": "nope"}), "bad.json").expect_err("bad");
        assert!(matches!(err, SchemaLoadError::Invalid { .. }));
        assert!(
            err.to_string()
                .starts_with("bad.json: not a valid JSON Schema: /type: "),
            "{err}"
        );
    }
}
