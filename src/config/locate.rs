//! Where each field of a YAML document is: an index from field path
//! (`source.mqtt.subscriptions[0].qos`) to line and column.
//!
//! The values themselves come from `yaml_serde`; this index exists only so
//! that every error, including those found long after parsing (a dangling
//! stage name, a missing schema file), can point at its place in the file.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, Span};

use super::error::Location;

/// Field path → positions of its key and its value.
#[derive(Debug, Default)]
pub struct Locator {
    values: HashMap<String, Location>,
    keys: HashMap<String, Location>,
}

enum Frame {
    Mapping { path: String, key: Option<String> },
    Sequence { path: String, next: usize },
}

/// Joins a parent path and a mapping key.
pub fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// Joins a parent path and a sequence index.
pub fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

fn location(span: &Span) -> Location {
    Location {
        line: span.start.line(),
        column: span.start.col() + 1,
    }
}

impl Locator {
    /// Indexes `text`. A document the parser cannot read gives an empty
    /// index: the YAML error itself is reported by the loader.
    pub fn new(text: &str) -> Locator {
        let mut locator = Locator::default();
        let mut stack: Vec<Frame> = Vec::new();
        for item in Parser::new_from_str(text) {
            let Ok((event, span)) = item else { break };
            match event {
                Event::Scalar(value, ..) => {
                    if let Some(Frame::Mapping { path, key }) = stack.last_mut() {
                        if key.is_none() {
                            let full = join(path, &value);
                            locator.keys.insert(full, location(&span));
                            *key = Some(value.into_owned());
                            continue;
                        }
                    }
                    if let Some(path) = child_path(&mut stack) {
                        locator.values.insert(path, location(&span));
                    }
                }
                Event::Alias(_) => {
                    if let Some(path) = child_path(&mut stack) {
                        locator.values.insert(path, location(&span));
                    }
                }
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    let path = if stack.is_empty() {
                        Some(String::new())
                    } else {
                        child_path(&mut stack)
                    };
                    // A complex (non-scalar) mapping key: not addressable.
                    let path = path.unwrap_or_else(|| "\u{0}".to_string());
                    locator.values.insert(path.clone(), location(&span));
                    stack.push(match event {
                        Event::MappingStart(..) => Frame::Mapping { path, key: None },
                        _ => Frame::Sequence { path, next: 0 },
                    });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                }
                _ => {}
            }
        }
        locator
    }

    /// Where the value at `path` starts.
    pub fn value(&self, path: &str) -> Option<Location> {
        self.values.get(path).copied()
    }

    /// Where the key of `path` is (falls back to its value, then to the
    /// nearest enclosing field that has a position).
    pub fn key_or_value(&self, path: &str) -> Option<Location> {
        let mut p = path;
        loop {
            if let Some(l) = self.keys.get(p).or_else(|| self.values.get(p)) {
                return Some(*l);
            }
            p = parent(p)?;
        }
    }
}

/// The enclosing path: `a.b[2].c` → `a.b[2]` → `a.b` → `a` → ``.
pub fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

/// The path of the next value in the innermost container, advancing it.
fn child_path(stack: &mut [Frame]) -> Option<String> {
    match stack.last_mut()? {
        Frame::Mapping { path, key } => key.take().map(|k| join(path, &k)),
        Frame::Sequence { path, next } => {
            let p = index(path, *next);
            *next += 1;
            Some(p)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
source:
  mqtt:
    url: mqtt://x
    subscriptions:
      - { filter: a/b, qos: 1 }
      - filter: c/d
        qos: 0
stages:
  by_kind: { type: router }
";

    #[test]
    fn finds_keys_and_values_in_block_and_flow_style() {
        let l = Locator::new(DOC);
        assert_eq!(
            l.value("source.mqtt.url"),
            Some(Location {
                line: 3,
                column: 10
            })
        );
        assert_eq!(
            l.value("source.mqtt.subscriptions[0].qos"),
            Some(Location {
                line: 5,
                column: 29
            })
        );
        assert_eq!(
            l.key_or_value("source.mqtt.subscriptions[1].qos"),
            Some(Location { line: 7, column: 9 })
        );
        assert_eq!(
            l.key_or_value("stages.by_kind.type"),
            Some(Location {
                line: 9,
                column: 14
            })
        );
    }

    #[test]
    fn missing_fields_fall_back_to_their_parent() {
        let l = Locator::new(DOC);
        assert_eq!(
            l.key_or_value("stages.by_kind.next"),
            Some(Location { line: 9, column: 3 })
        );
        assert_eq!(parent("a.b[2].c"), Some("a.b[2]"));
        assert_eq!(parent("a.b[2]"), Some("a.b"));
        assert_eq!(parent("a"), Some(""));
    }
}
