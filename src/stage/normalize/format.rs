//! The closed set of payload formats a normalize stage can select, and the
//! one `match` that hands a document to its format's file.
//!
//! Adding a format means a variant here, a file beside this one and a JSON
//! Schema in `schemas/`; a name the pipeline file uses that is not here is
//! refused when the pipeline compiles.

use serde_json::Value;

use crate::envelope::{Body, Rejection};

use super::{ack_v1, parsec_v1, v1};

/// Closed set of payload formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// TrakSense v1 telemetry.
    V1,
    /// Parsec controllers.
    ParsecV1,
    /// TrakSense v1 command acknowledgement.
    AckV1,
}

/// What a format produces, so the pipeline compiler can check that a
/// normalize stage feeds a sink that takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Rows for `ts_measure`.
    Measures,
    /// A row for `cmd_ack`.
    Ack,
}

impl Format {
    /// Every format, for listing the known names in config errors.
    pub const ALL: [Format; 3] = [Format::V1, Format::ParsecV1, Format::AckV1];

    /// Name in the pipeline file.
    pub fn name(self) -> &'static str {
        match self {
            Format::V1 => "v1",
            Format::ParsecV1 => "parsec_v1",
            Format::AckV1 => "ack_v1",
        }
    }

    /// Looks a format up by its pipeline-file name.
    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }

    /// What it produces.
    pub fn output(self) -> Output {
        match self {
            Format::AckV1 => Output::Ack,
            _ => Output::Measures,
        }
    }

    /// Turns a document of this format into rows: `Body::Measures` or
    /// `Body::Ack`, as [`Format::output`] says.
    pub fn normalize(self, doc: &Value) -> Result<Body, Rejection> {
        match self {
            Format::V1 => v1::normalize(doc),
            Format::ParsecV1 => parsec_v1::normalize(doc),
            Format::AckV1 => ack_v1::normalize(doc),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names_round_trip() {
        for format in Format::ALL {
            assert_eq!(Format::from_name(format.name()), Some(format));
        }
        assert_eq!(Format::from_name("v2"), None);
    }

    #[test]
    fn each_format_produces_its_declared_output() {
        let docs = [
            (
                Format::V1,
                json!({"ts": "2025-10-07T15:30:00Z", "points": [{"name": "a", "v": 1}]}),
            ),
            (
                Format::ParsecV1,
                json!({"ts": "2025-10-07T15:30:00Z", "di1": 0, "di2": 0}),
            ),
            (Format::AckV1, json!({"cmd_id": "c", "ok": true})),
        ];
        for (format, doc) in docs {
            let body = match format.normalize(&doc) {
                Ok(body) => body,
                Err(r) => panic!("{}: {r:?}", format.name()),
            };
            let output = match body {
                Body::Measures(_) => Output::Measures,
                Body::Ack(_) => Output::Ack,
                other => panic!("unexpected {other:?}"),
            };
            assert_eq!(output, format.output(), "{}", format.name());
        }
    }
}
