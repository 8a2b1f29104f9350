//! STUB — replaced by the stages helper.
use super::format::Format;
use crate::envelope::Envelope;
use crate::stage::json_schema::JsonSchema;

/// One selectable format of a normalize stage.
#[derive(Debug)]
pub struct FormatSpec {
    /// Value of the `by` field that selects it.
    pub selector: String,
    /// The format.
    pub format: Format,
    /// Its schema.
    pub schema: JsonSchema,
}

/// A compiled normalize stage.
#[derive(Debug)]
pub struct Normalize {}

impl Normalize {
    /// Builds the stage.
    pub fn new(_by: String, _formats: Vec<FormatSpec>, _detect: Vec<String>) -> Self {
        Normalize {}
    }
    /// Normalizes one envelope.
    pub fn process(&self, envelope: Envelope) -> Result<Envelope, Envelope> {
        Ok(envelope)
    }
}
