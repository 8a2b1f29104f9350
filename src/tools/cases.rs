//! `runner test` cases: the test file beside a pipeline, read with every
//! problem located, like the pipeline file itself.
//!
//! The cases of `pipelines/NAME.yaml` live in `pipelines/NAME.tests.yaml`
//! (the pipeline loader refuses unknown top-level keys, so they cannot sit
//! in the pipeline file). Each case publishes one payload on one topic and
//! says what must become of it:
//!
//! ```yaml
//! cases:
//!   - name: v1 float point
//!     topic: traksense/t1/site/dev1/telem
//!     payload: { schema: v1, ts: "2025-10-07T15:30:00Z", points: [{ name: temp, v: 25.5 }] }
//!     expect:
//!       sink: ts_measure                   # optional with rows
//!       rows: [{ point_id: temp, v_num: 25.5 }]   # only the columns listed are compared
//!   - name: not JSON
//!     topic: traksense/t1/site/dev1/telem
//!     payload: "{oops"                     # a string is sent as is; anything else as JSON
//!     expect: { reason: parse_error, detail: "line 1" }   # detail: a substring
//! ```

use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::error::{did_you_mean, suggest, ConfigError, ConfigErrors, Location};
use crate::config::locate::{index, join, Locator};
use crate::envelope::Reason;

use super::rows::Row;

/// The test cases of one pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseFile {
    /// The test file.
    pub file: PathBuf,
    /// The cases, in file order.
    pub cases: Vec<Case>,
}

/// One payload and what must become of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// What it shows, for the report.
    pub name: String,
    /// Where in the test file it is.
    pub location: Option<Location>,
    /// The topic it is published on.
    pub topic: String,
    /// The exact bytes published.
    pub payload: Bytes,
    /// What must happen.
    pub expect: Expect,
}

/// What a case expects.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    /// These rows in a data sink (`sink`, when given). Each expected row
    /// lists the columns it checks; the number of rows must match.
    Rows {
        /// The sink, when the case names it.
        sink: Option<String>,
        /// The rows, each a subset of columns.
        rows: Vec<Row>,
    },
    /// The payload reaches this sink, whatever it becomes there.
    Sink(String),
    /// The payload is rejected for `reason`, its detail containing `detail`.
    Rejected {
        /// The reason code.
        reason: Reason,
        /// A substring of the detail.
        detail: Option<String>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: String,
    topic: String,
    payload: Value,
    #[serde(default)]
    pad_to_bytes: Option<usize>,
    expect: RawExpect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    #[serde(default)]
    sink: Option<String>,
    #[serde(default)]
    rows: Option<Vec<Map<String, Value>>>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    detail: Option<String>,
}

/// The test file of a pipeline: `NAME.yaml` → `NAME.tests.yaml`.
pub fn tests_file_for(pipeline: &Path) -> PathBuf {
    let name = pipeline
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tests = match name.rsplit_once('.') {
        Some((stem, ext)) => format!("{stem}.tests.{ext}"),
        None => format!("{name}.tests.yaml"),
    };
    pipeline.with_file_name(tests)
}

/// The pipeline of a test file, if `file` is one (`NAME.tests.yaml`).
pub fn pipeline_for(file: &Path) -> Option<PathBuf> {
    let name = file.file_name()?.to_string_lossy().into_owned();
    let (stem, ext) = name.rsplit_once('.')?;
    let stem = stem.strip_suffix(".tests")?;
    Some(file.with_file_name(format!("{stem}.{ext}")))
}

/// The pipeline and its test file, from either of them.
pub fn locate(given: &Path) -> (PathBuf, PathBuf) {
    match pipeline_for(given) {
        Some(pipeline) => (pipeline, given.to_path_buf()),
        None => (given.to_path_buf(), tests_file_for(given)),
    }
}

/// Reads a test file; every problem is reported, located.
pub fn load(file: &Path) -> Result<CaseFile, ConfigErrors> {
    let mut errors = Errors {
        file: file.to_path_buf(),
        locator: Locator::default(),
        list: Vec::new(),
    };
    let text = std::fs::read_to_string(file).map_err(|e| {
        errors.add("", format!("cannot read the test file: {e}"), None);
        ConfigErrors(errors.list.clone())
    })?;
    errors.locator = Locator::new(&text);
    let doc: Value = yaml_serde::from_str(&text).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: file.to_path_buf(),
            location: e.location().map(|l| Location {
                line: l.line(),
                column: l.column(),
            }),
            path: String::new(),
            message: format!("not valid YAML: {e}"),
            hint: None,
        }])
    })?;
    let mut cases = Vec::new();
    match doc {
        Value::Object(mut top) => {
            for key in top.keys().filter(|k| *k != "cases") {
                errors.add(
                    key,
                    format!("unknown top-level key `{key}`"),
                    Some("a test file has only `cases:`".into()),
                );
            }
            match top.shift_remove("cases") {
                Some(Value::Array(items)) => {
                    for (i, item) in items.into_iter().enumerate() {
                        if let Some(case) = read_case(&mut errors, &index("cases", i), item) {
                            cases.push(case);
                        }
                    }
                }
                _ => errors.add("cases", "expected `cases:` with a list of cases", None),
            }
        }
        _ => errors.add("", "expected a mapping with `cases:`", None),
    }
    if errors.list.is_empty() && cases.is_empty() {
        errors.add("cases", "no cases", Some("add at least one case".into()));
    }
    if !errors.list.is_empty() {
        return Err(ConfigErrors(errors.list));
    }
    Ok(CaseFile {
        file: file.to_path_buf(),
        cases,
    })
}

/// Problems found so far, located in the test file.
struct Errors {
    file: PathBuf,
    locator: Locator,
    list: Vec<ConfigError>,
}

impl Errors {
    fn add(&mut self, path: &str, message: impl Into<String>, hint: Option<String>) {
        self.list.push(ConfigError {
            file: self.file.clone(),
            location: self.locator.key_or_value(path),
            path: path.to_string(),
            message: message.into(),
            hint,
        });
    }
}

fn read_case(errors: &mut Errors, path: &str, item: Value) -> Option<Case> {
    let raw: RawCase = match serde_path_to_error::deserialize(item) {
        Ok(raw) => raw,
        Err(e) => {
            let inner = e.path().to_string();
            let mut at = if inner == "." {
                path.to_string()
            } else {
                join(path, &inner)
            };
            let message = e.into_inner().to_string();
            let mut hint = None;
            if let Some(field) = between(&message, "unknown field `", "`") {
                at = join(&at, field);
                let known = [
                    "name",
                    "topic",
                    "payload",
                    "pad_to_bytes",
                    "expect",
                    "sink",
                    "rows",
                    "reason",
                    "detail",
                ];
                hint = did_you_mean(field, known);
            } else if let Some(field) = between(&message, "missing field `", "`") {
                hint = Some(format!("add `{field}:`"));
            }
            errors.add(&at, message, hint);
            return None;
        }
    };
    let before = errors.list.len();
    let expect = read_expect(errors, &join(path, "expect"), raw.expect);
    let mut payload = match raw.payload {
        Value::String(s) => s.into_bytes(),
        other => other.to_string().into_bytes(),
    };
    if let Some(size) = raw.pad_to_bytes {
        if payload.len() < size {
            payload.resize(size, b' ');
        }
    }
    if raw.topic.is_empty() {
        errors.add(&join(path, "topic"), "empty topic", None);
    }
    (errors.list.len() == before).then_some(())?;
    Some(Case {
        name: raw.name,
        location: errors.locator.key_or_value(path),
        topic: raw.topic,
        payload: Bytes::from(payload),
        expect: expect?,
    })
}

fn read_expect(errors: &mut Errors, path: &str, raw: RawExpect) -> Option<Expect> {
    match (raw.rows, raw.reason, raw.sink) {
        (Some(_), Some(_), _) => {
            errors.add(
                path,
                "expects both rows and a rejection",
                Some("keep `rows:` or `reason:`, not both".into()),
            );
            None
        }
        (_, Some(_), Some(_)) => {
            errors.add(
                &join(path, "sink"),
                "a rejection always goes to the dead-letter sink",
                Some("remove `sink:`".into()),
            );
            None
        }
        (None, None, Some(sink)) if raw.detail.is_none() => Some(Expect::Sink(sink)),
        (Some(rows), None, sink) if raw.detail.is_none() => Some(Expect::Rows { sink, rows }),
        (_, None, _) => {
            let (at, message) = if raw.detail.is_some() {
                (join(path, "detail"), "`detail:` needs a `reason:`")
            } else {
                (path.to_string(), "expects nothing")
            };
            errors.add(
                &at,
                message,
                Some("say what must happen: `rows:`, `sink:` or `reason:` (+ `detail:`)".into()),
            );
            None
        }
        (None, Some(reason), None) => {
            let known: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
            match Reason::ALL.into_iter().find(|r| r.as_str() == reason) {
                Some(reason) => Some(Expect::Rejected {
                    reason,
                    detail: raw.detail,
                }),
                None => {
                    errors.add(
                        &join(path, "reason"),
                        format!("unknown reason {reason:?}"),
                        Some(suggest(&reason, &known)),
                    );
                    None
                }
            }
        }
    }
}

/// The text between `start` and the next `end` in `text`.
fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    Some(&text[from..from + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<CaseFile, ConfigErrors> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.tests.yaml");
        std::fs::write(&file, text).unwrap();
        load(&file)
    }

    #[test]
    fn finds_the_test_file_beside_the_pipeline_and_back() {
        let tests = tests_file_for(Path::new("pipelines/traksense.yaml"));
        assert_eq!(tests, Path::new("pipelines/traksense.tests.yaml"));
        assert_eq!(
            pipeline_for(&tests).unwrap(),
            Path::new("pipelines/traksense.yaml")
        );
        assert_eq!(pipeline_for(Path::new("pipelines/traksense.yaml")), None);
    }

    #[test]
    fn reads_payloads_as_text_or_json_and_pads_them() {
        let file = load_text(
            "cases:\n  - name: a\n    topic: t\n    payload: {b: 1}\n    pad_to_bytes: 10\n    expect: {sink: s}\n  \
             - name: c\n    topic: t\n    payload: '{x'\n    expect: {reason: parse_error, detail: x}\n",
        )
        .unwrap();
        assert_eq!(&file.cases[0].payload[..], b"{\"b\":1}   ");
        assert_eq!(file.cases[0].expect, Expect::Sink("s".into()));
        assert_eq!(
            file.cases[0].location,
            Some(Location { line: 2, column: 5 })
        );
        assert_eq!(&file.cases[1].payload[..], b"{x");
        assert_eq!(
            file.cases[1].expect,
            Expect::Rejected {
                reason: Reason::ParseError,
                detail: Some("x".into())
            }
        );
    }

    #[test]
    fn reports_every_mistake_with_its_place() {
        let ConfigErrors(errors) = load_text(
            "cases:\n  - name: a\n    topic: t\n    payload: {}\n    expect: {reason: parse_eror}\n  \
             - name: b\n    topic: t\n    payload: {}\n    expcet: {sink: s}\n  \
             - name: c\n    topic: t\n    payload: {}\n    expect: {}\n",
        )
        .unwrap_err();
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 3, "{shown:#?}");
        assert!(
            shown[0].contains(":5:") && shown[0].contains("did you mean \"parse_error\"?"),
            "{}",
            shown[0]
        );
        assert!(
            shown[1].contains(":9:") && shown[1].contains("did you mean \"expect\"?"),
            "{}",
            shown[1]
        );
        assert!(shown[2].contains("expects nothing"), "{}", shown[2]);
    }
}
