//! STUB — replaced by the stages helper.
use std::path::Path;

use crate::envelope::Envelope;

/// Why a schema file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SchemaLoadError {
    /// Placeholder.
    #[error("{0}")]
    Other(String),
}

/// A compiled JSON-Schema validation stage.
#[derive(Debug)]
pub struct JsonSchema {}

impl JsonSchema {
    /// Loads and compiles a schema file.
    pub fn load(_path: &Path) -> Result<Self, SchemaLoadError> {
        Ok(JsonSchema {})
    }
    /// Validates one envelope.
    pub fn process(&self, envelope: Envelope) -> Result<Envelope, Envelope> {
        Ok(envelope)
    }
}
