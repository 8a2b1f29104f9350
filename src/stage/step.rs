//! The closed set of stage kinds and the one `match` that runs them.
//!
//! Both the live pipeline (`graph::run`) and any offline tool call
//! [`Stage::process`], so what a dry run shows is what the runner does.

use crate::envelope::{Envelope, Reason};

use super::json_schema::JsonSchema;
use super::normalize::Normalize;
use super::router::Router;

/// A compiled stage, ready to process envelopes.
#[derive(Debug)]
pub enum Stage {
    /// Picks an output by a topic capture.
    Router(Router),
    /// Parses the payload and validates it against a JSON Schema.
    JsonSchema(JsonSchema),
    /// Selects a payload format and turns the document into rows.
    Normalize(Normalize),
}

/// What a stage did with one envelope.
#[derive(Debug)]
pub enum Step {
    /// Pass the envelope on to the stage's output number `port`
    /// (always 0 except for routers).
    Next(usize, Envelope),
    /// The envelope was refused: its body is `Body::Rejected`.
    Reject(Envelope),
}

impl Stage {
    /// Runs this stage on one envelope. Never panics on user input.
    pub fn process(&self, envelope: Envelope) -> Step {
        let result = match self {
            Stage::Router(router) => return router.process(envelope),
            Stage::JsonSchema(stage) => stage.process(envelope),
            Stage::Normalize(stage) => stage.process(envelope),
        };
        match result {
            Ok(envelope) => Step::Next(0, envelope),
            Err(rejected) => Step::Reject(rejected),
        }
    }

    /// The dead-letter reasons this kind of stage can give, for graphs and
    /// documentation.
    pub fn reasons(&self) -> &'static [Reason] {
        match self {
            Stage::Router(_) => &[Reason::BadTopic],
            Stage::JsonSchema(_) => &[Reason::ParseError, Reason::SchemaError],
            Stage::Normalize(_) => &[
                Reason::ParseError,
                Reason::UnknownSchema,
                Reason::SchemaError,
                Reason::BadTimestamp,
            ],
        }
    }

    /// The stage kind as written in the pipeline file, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Stage::Router(_) => "router",
            Stage::JsonSchema(_) => "json_schema",
            Stage::Normalize(_) => "normalize",
        }
    }
}
