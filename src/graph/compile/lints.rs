//! Warnings about pipelines that compile but cannot do what they say: a
//! subscription whose every message is a `bad_topic`, a route no
//! subscription ever feeds, a format no payload can select, write slots
//! the connection pool cannot serve. The runner
//! logs them at start; `runner check --deny-warnings` makes them errors.
//!
//! Run only on a pipeline without errors, so they never bury an error.

use std::path::Path;

use serde_json::Value;

use crate::config::error::ConfigError;
use crate::config::load::RawPipeline;
use crate::config::model::StageConfig;
use crate::graph::plan::SourcePlan;

/// What a subscription filter lets through at one level of the pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Level {
    Any,
    Exactly(String),
}

/// One level of the topic pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Capture(String),
}

/// Every warning for `raw` (schemas are read relative to `base`).
pub(super) fn lint(raw: &RawPipeline, base: &Path, source: &SourcePlan) -> Vec<ConfigError> {
    let mut warnings = Vec::new();
    let mut warn = |path: String, message: String, hint: String| {
        warnings.push(ConfigError {
            file: raw.file.clone(),
            location: raw.locator.key_or_value(&path),
            path,
            message,
            hint: Some(hint),
        });
    };
    let pattern: Vec<Segment> = source
        .topic
        .to_string()
        .split('/')
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => Segment::Capture(name.to_string()),
                None => Segment::Literal(s.to_string()),
            },
        )
        .collect();

    // What each subscription lets through, level by level (None: nothing
    // that fits the pattern).
    let admitted: Vec<Option<Vec<Level>>> = source
        .mqtt
        .subscriptions
        .iter()
        .map(|(filter, _)| admits(filter, &pattern))
        .collect();
    for (i, levels) in admitted.iter().enumerate() {
        if levels.is_none() {
            warn(
                format!("source.mqtt.subscriptions[{i}].filter"),
                format!(
                    "no topic this filter receives fits the topic pattern {}: every message \
                     on it becomes a bad_topic dead letter",
                    source.topic
                ),
                format!(
                    "make the filter fit the pattern, e.g. {}",
                    example(&pattern, None)
                ),
            );
        }
    }

    for (name, stage) in &raw.stages {
        match stage {
            StageConfig::Router { on, routes, .. } => {
                let Some(at) = pattern
                    .iter()
                    .position(|s| matches!(s, Segment::Capture(c) if c == on))
                else {
                    continue; // reported as an error by the graph checks
                };
                let delivered: Vec<&Level> = admitted.iter().flatten().map(|l| &l[at]).collect();
                if delivered.is_empty() || delivered.contains(&&Level::Any) {
                    continue;
                }
                for value in routes.keys() {
                    if !delivered.contains(&&Level::Exactly(value.clone())) {
                        warn(
                            format!("stages.{name}.routes.{value}"),
                            format!(
                                "no subscription delivers topics with {{{on}}} = {value:?}: this \
                                 route is never taken"
                            ),
                            format!(
                                "subscribe to {}, or remove the route",
                                example(&pattern, Some((at, value)))
                            ),
                        );
                    }
                }
            }
            StageConfig::Normalize {
                by,
                formats,
                detect,
                ..
            } => {
                for (selector, format) in formats {
                    if detect.contains(selector) {
                        continue; // selectable by its schema, without the field
                    }
                    let file = base.join(&format.schema);
                    let Some(allowed) = pinned(&file, by) else {
                        continue;
                    };
                    if !allowed.contains(&Value::String(selector.clone())) {
                        let shown: Vec<String> = allowed.iter().map(Value::to_string).collect();
                        warn(
                            format!("stages.{name}.formats.{selector}"),
                            format!(
                                "format {selector:?} can never be selected: its schema {} \
                                 requires {by:?} to be {}, so a payload naming {selector:?} is \
                                 always a schema_error",
                                format.schema,
                                shown.join(" or ")
                            ),
                            format!(
                                "name the format {} here, or change the schema's {by:?} property",
                                shown.join(" or ")
                            ),
                        );
                    }
                }
            }
            StageConfig::JsonSchema { .. } => {}
        }
    }

    if let Some(db) = &raw.database {
        let slots: usize = raw.sinks.values().map(|s| s.batch.parallel).sum();
        if slots > db.pool_max as usize {
            warn(
                "database.pool_max".into(),
                format!(
                    "the sinks write up to {slots} batches at once (the sum of their \
                     batch.parallel) but the pool has {} connections: the writes beyond it \
                     wait for a connection",
                    db.pool_max
                ),
                format!(
                    "set pool_max (DB_POOL_MAX) to at least {slots}, or lower a sink's \
                     batch.parallel"
                ),
            );
        }
    }
    warnings
}

/// What `filter` lets through at each level of `pattern`, or `None` when
/// no topic it receives fits the pattern.
fn admits(filter: &str, pattern: &[Segment]) -> Option<Vec<Level>> {
    let inner = match filter.strip_prefix("$share/") {
        Some(rest) => rest.split_once('/')?.1,
        None => filter,
    };
    let levels: Vec<&str> = inner.split('/').collect();
    let mut out = Vec::with_capacity(pattern.len());
    for (j, segment) in pattern.iter().enumerate() {
        match (levels.get(j).copied(), segment) {
            (None, _) => return None,
            (Some("#"), _) => {
                out.resize(pattern.len(), Level::Any);
                return Some(out);
            }
            (Some("+"), _) => out.push(Level::Any),
            (Some(l), Segment::Literal(p)) if l != p => return None,
            (Some(l), _) => out.push(Level::Exactly(l.to_string())),
        }
    }
    // `a/#` also receives `a` itself.
    match &levels[pattern.len()..] {
        [] | ["#"] => Some(out),
        _ => None,
    }
}

/// A filter fitting `pattern`, `+` for each capture but the one given.
fn example(pattern: &[Segment], fixed: Option<(usize, &str)>) -> String {
    let levels: Vec<&str> = pattern
        .iter()
        .enumerate()
        .map(|(j, s)| match (s, fixed) {
            (_, Some((at, value))) if at == j => value,
            (Segment::Literal(l), _) => l.as_str(),
            (Segment::Capture(_), _) => "+",
        })
        .collect();
    levels.join("/")
}

/// The values the schema in `file` allows for the top-level `field`, when
/// it pins them with `const` or `enum`.
fn pinned(file: &Path, field: &str) -> Option<Vec<Value>> {
    let text = std::fs::read_to_string(file).ok()?;
    let schema: Value = serde_json::from_str(&text).ok()?;
    let property = schema.get("properties")?.get(field)?;
    if let Some(value) = property.get("const") {
        return Some(vec![value.clone()]);
    }
    property.get("enum")?.as_array().cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern() -> Vec<Segment> {
        vec![
            Segment::Literal("traksense".into()),
            Segment::Capture("tenant".into()),
            Segment::Capture("kind".into()),
        ]
    }

    #[test]
    fn filters_admit_what_fits_the_pattern() {
        let any = Some(vec![Level::Any, Level::Any, Level::Any]);
        assert_eq!(admits("#", &pattern()), any);
        assert_eq!(admits("traksense/#", &pattern()).map(|l| l.len()), Some(3));
        assert_eq!(
            admits("$share/g/traksense/+/ack", &pattern()),
            Some(vec![
                Level::Exactly("traksense".into()),
                Level::Any,
                Level::Exactly("ack".into())
            ])
        );
        assert_eq!(
            admits("traksense/+/ack/#", &pattern()).map(|l| l.len()),
            Some(3)
        );
        assert_eq!(admits("traksens/#", &pattern()), None);
        assert_eq!(admits("traksense/+", &pattern()), None);
        assert_eq!(admits("traksense/+/+/+", &pattern()), None);
        assert_eq!(example(&pattern(), Some((2, "ack"))), "traksense/+/ack");
    }
}
