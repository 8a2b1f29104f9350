//! JSON Schema fragments for the fields whose Rust type says less, or
//! more, than the pipeline file accepts, used by the `JsonSchema` derives in
//! [`super::model`] (`runner schema`):
//!
//! - numbers and booleans may also be strings, because `${VAR:-5000}` is a
//!   string until it is interpolated ([`super::de::lenient`]);
//! - sink types and format names are closed sets, listed from the enums
//!   that own them, so an editor offers exactly what the compiler accepts;
//! - stage and sink names follow the loader's rule for names.

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};

use crate::sink::postgres::kind::SinkKind;
use crate::stage::normalize::Format;

/// The loader's rule for stage and sink names (`load::is_name`).
pub const NAME_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_-]*$";

/// A string the loader can turn into a number: digits, or anything holding
/// a `${…}` reference (checked once interpolated).
const INTEGER_TEXT: &str = r"^\s*[0-9]+\s*$|\$\{";

/// A string the loader can turn into a boolean.
const BOOL_TEXT: &str = r"^\s*(true|false)\s*$|\$\{";

/// A non-negative integer, or a string that becomes one.
pub fn lenient_unsigned(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "anyOf": [
            { "type": "integer", "minimum": 0 },
            { "type": "string", "pattern": INTEGER_TEXT }
        ]
    })
}

/// [`lenient_unsigned`], or nothing (`null` or an empty string).
pub fn lenient_unsigned_opt(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "anyOf": [
            { "type": "integer", "minimum": 0 },
            { "type": "string", "pattern": format!("{INTEGER_TEXT}|^\\s*$") },
            { "type": "null" }
        ]
    })
}

/// A boolean, or a string that becomes one.
pub fn lenient_bool(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "anyOf": [
            { "type": "boolean" },
            { "type": "string", "pattern": BOOL_TEXT }
        ]
    })
}

/// `sinks.NAME.type`: one of [`SinkKind::ALL`].
pub fn sink_type(_: &mut SchemaGenerator) -> Schema {
    let names: Vec<&str> = SinkKind::ALL.iter().map(|k| k.name()).collect();
    json_schema!({ "type": "string", "enum": names })
}

/// `formats.VALUE.format`: one of [`Format::ALL`].
pub fn format_name(_: &mut SchemaGenerator) -> Schema {
    let names: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
    json_schema!({ "type": "string", "enum": names })
}

/// A mapping of name → `T`, names following [`NAME_PATTERN`].
pub fn named<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    let value = generator.subschema_for::<T>();
    json_schema!({
        "type": "object",
        "propertyNames": { "pattern": NAME_PATTERN },
        "additionalProperties": value
    })
}
