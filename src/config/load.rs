//! Reading a pipeline file into its raw model, collecting every problem with
//! its location instead of stopping at the first.
//!
//! Each top-level section, and each stage and sink, is deserialized on its
//! own, so a typo in one stage still lets the others be checked.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::{did_you_mean, ConfigError, Location};
use super::interpolate::interpolate;
use super::locate::{join, Locator};
use super::model::{
    DatabaseConfig, RuntimeConfig, SinkConfig, SourceConfig, StageConfig, TOP_LEVEL_KEYS,
};

/// A pipeline file as read, with whatever could not be read reported in
/// `errors`. Sections that failed are `None` or missing from the maps.
#[derive(Debug)]
pub struct RawPipeline {
    /// The file, as given.
    pub file: PathBuf,
    /// Field path → position, for errors found later.
    pub locator: Locator,
    /// `source:`
    pub source: Option<SourceConfig>,
    /// `stages:`, in file order.
    pub stages: IndexMap<String, StageConfig>,
    /// `sinks:`, in file order.
    pub sinks: IndexMap<String, SinkConfig>,
    /// `database:`
    pub database: Option<DatabaseConfig>,
    /// `runtime:`
    pub runtime: RuntimeConfig,
    /// Every problem found so far.
    pub errors: Vec<ConfigError>,
    /// Stages and sinks declared but not loaded (their errors are in
    /// `errors`), so references to them are not reported a second time.
    pub unloaded: Vec<String>,
    /// A whole `stages:` or `sinks:` section could not be read: any name
    /// may have been declared there, so no reference is reported missing.
    pub names_unknown: bool,
}

impl RawPipeline {
    /// Records a problem at `path`, located by the index.
    pub fn error(&mut self, path: &str, message: impl Into<String>, hint: Option<String>) {
        if self.errors.iter().any(|e| e.path == path) {
            return; // one report per field is enough
        }
        let location = self.locator.key_or_value(path);
        self.errors.push(ConfigError {
            file: self.file.clone(),
            location,
            path: path.to_string(),
            message: message.into(),
            hint,
        });
    }

    /// Records a serde error from deserializing the value at `base`.
    fn serde_error(&mut self, base: &str, err: serde_path_to_error::Error<serde_json::Error>) {
        let inner = err.path().to_string();
        let mut path = if inner == "." || inner.is_empty() {
            base.to_string()
        } else if inner.starts_with('[') {
            format!("{base}{inner}")
        } else {
            join(base, &inner)
        };
        let message = err.into_inner().to_string();
        let mut hint = None;
        if let Some(field) = quoted_after(&message, "unknown field `") {
            // serde_path_to_error names the field itself for a struct, not
            // for an internally tagged enum's variant.
            if !path.ends_with(&format!(".{field}")) {
                path = join(&path, field);
            }
            hint = did_you_mean(field, expected(&message))
                .or_else(|| Some(format!("remove `{field}`; {}", expected_text(&message))));
            self.error(&path, format!("unknown field `{field}`"), hint);
            return;
        }
        if let Some(field) = quoted_after(&message, "missing field `") {
            path = join(&path, field);
            hint = Some(format!("add `{field}:`"));
        }
        if let Some(variant) = quoted_after(&message, "unknown variant `") {
            if !path.ends_with(".type") {
                path = join(&path, "type");
            }
            hint = did_you_mean(variant, expected(&message));
        }
        self.error(&path, message.clone(), hint.or_else(|| type_hint(&message)));
    }
}

/// What to write instead of a value of the wrong type or form.
fn type_hint(message: &str) -> Option<String> {
    if message.starts_with("invalid value ") {
        return Some(if message.contains("digit") || message.contains("number") {
            "write a whole number, e.g. 5000 or ${VAR:-5000}".into()
        } else if message.contains("true") {
            "write true or false".into()
        } else {
            "see `runner schema` for what this field takes".into()
        });
    }
    let (_, expected) = message.split_once(", expected ")?;
    Some(format!("write {expected} here"))
}

/// The text between `prefix` and the next backtick.
fn quoted_after<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let start = message.find(prefix)? + prefix.len();
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

/// The names listed after "expected one of" in a serde message.
fn expected(message: &str) -> Vec<&str> {
    message
        .split_once("expected")
        .map(|(_, rest)| rest.split('`').skip(1).step_by(2).collect())
        .unwrap_or_default()
}

fn expected_text(message: &str) -> String {
    message
        .split_once("expected")
        .map(|(_, rest)| format!("expected{rest}"))
        .unwrap_or_default()
}

/// Reads and interpolates a pipeline file. Never fails: problems are in
/// the returned `errors`.
pub fn load(file: &Path, env: &dyn Fn(&str) -> Option<String>) -> RawPipeline {
    let mut raw = RawPipeline {
        file: file.to_path_buf(),
        locator: Locator::default(),
        source: None,
        stages: IndexMap::new(),
        sinks: IndexMap::new(),
        database: None,
        runtime: RuntimeConfig::default(),
        errors: Vec::new(),
        unloaded: Vec::new(),
        names_unknown: false,
    };
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) => {
            raw.error(
                "",
                format!("cannot read the pipeline file: {e}"),
                Some("check the path (relative to the current directory)".into()),
            );
            return raw;
        }
    };
    raw.locator = Locator::new(&text);
    let mut doc: Value = match yaml_serde::from_str(&text) {
        Ok(doc) => doc,
        Err(e) => {
            let location = e.location().map(|l| Location {
                line: l.line(),
                column: l.column(),
            });
            raw.errors.push(ConfigError {
                file: file.to_path_buf(),
                location,
                path: String::new(),
                message: format!("not valid YAML: {e}"),
                hint: Some(
                    "check the indentation (spaces, not tabs) and that every bracket and quote \
                     opened at or before this place is closed"
                        .into(),
                ),
            });
            return raw;
        }
    };
    for e in interpolate(&mut doc, "", env) {
        raw.error(&e.path, e.message, Some(e.hint));
    }
    let Value::Object(mut top) = doc else {
        raw.error(
            "",
            "expected a mapping with source:, stages:, sinks: and database:",
            None,
        );
        return raw;
    };
    for key in top.keys().cloned().collect::<Vec<_>>() {
        if !TOP_LEVEL_KEYS.contains(&key.as_str()) {
            let hint = did_you_mean(&key, TOP_LEVEL_KEYS).or_else(|| {
                Some(format!(
                    "remove it; the top-level keys are {}",
                    TOP_LEVEL_KEYS.join(", ")
                ))
            });
            raw.error(&key, format!("unknown top-level key `{key}`"), hint);
        }
    }
    raw.source = section(&mut raw, &mut top, "source", true);
    raw.database = section(&mut raw, &mut top, "database", true);
    if let Some(runtime) = section(&mut raw, &mut top, "runtime", false) {
        raw.runtime = runtime;
    }
    raw.stages = named(&mut raw, top.shift_remove("stages"), "stages");
    raw.sinks = named(&mut raw, top.shift_remove("sinks"), "sinks");
    if raw.sinks.is_empty() && !raw.errors.iter().any(|e| e.path.starts_with("sinks")) {
        raw.names_unknown = true;
        raw.error(
            "sinks",
            "no sinks: a pipeline needs at least a dead_letter sink",
            Some("add `sinks:` with a `type: dead_letter` sink".into()),
        );
    }
    raw
}

fn section<T: DeserializeOwned>(
    raw: &mut RawPipeline,
    top: &mut serde_json::Map<String, Value>,
    key: &str,
    required: bool,
) -> Option<T> {
    let Some(value) = top.shift_remove(key) else {
        if required {
            raw.error(
                "",
                format!("missing `{key}:`"),
                Some(format!(
                    "add a top-level `{key}:` section (pipelines/traksense.yaml has one)"
                )),
            );
        }
        return None;
    };
    match serde_path_to_error::deserialize(value) {
        Ok(v) => Some(v),
        Err(e) => {
            raw.serde_error(key, e);
            None
        }
    }
}

fn named<T: DeserializeOwned>(
    raw: &mut RawPipeline,
    value: Option<Value>,
    key: &str,
) -> IndexMap<String, T> {
    let mut out = IndexMap::new();
    let entries = match value {
        None | Some(Value::Null) => return out,
        Some(Value::Object(map)) => map,
        Some(_) => {
            raw.names_unknown = true;
            raw.error(
                key,
                format!("`{key}:` must be a mapping of name → settings"),
                Some(format!(
                    "write `{key}:`, then one indented `NAME:` with its settings per entry"
                )),
            );
            return out;
        }
    };
    for (name, value) in entries {
        let path = join(key, &name);
        if !is_name(&name) {
            raw.unloaded.push(name.clone());
            raw.error(
                &path,
                format!("invalid name {name:?}"),
                Some("use letters, digits, `_` and `-`, starting with a letter or `_`".into()),
            );
            continue;
        }
        match serde_path_to_error::deserialize(value) {
            Ok(v) => {
                out.insert(name, v);
            }
            Err(e) => {
                raw.unloaded.push(name);
                raw.serde_error(&path, e);
            }
        }
    }
    out
}

/// Stage and sink names: identifiers, so they read well in logs and labels.
fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}
