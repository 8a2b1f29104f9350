//! Topic patterns: `traksense/{tenant}/{site}/{device}/{kind}`.
//!
//! A pattern is literal segments and `{name}` captures, one per segment. A
//! captured value is 1–64 characters of `[A-Za-z0-9_.:-]` (CONTRACT.md), so
//! a tenant id taken from a topic is always safe to use as a database value.

use std::sync::Arc;

use crate::envelope::Captures;

/// Longest captured value.
pub const MAX_CAPTURE_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Capture(Arc<str>),
}

/// A compiled topic pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPattern {
    segments: Vec<Segment>,
}

impl TopicPattern {
    /// Parses a pattern; `Err` says what is wrong with it.
    pub fn parse(pattern: &str) -> Result<TopicPattern, String> {
        if pattern.is_empty() {
            return Err("the topic pattern is empty".into());
        }
        let mut segments = Vec::new();
        for segment in pattern.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(format!(
                        "capture {segment:?} needs a name of letters, digits and _"
                    ));
                }
                if segments
                    .iter()
                    .any(|s| matches!(s, Segment::Capture(n) if &**n == name))
                {
                    return Err(format!("capture {{{name}}} appears twice"));
                }
                segments.push(Segment::Capture(Arc::from(name)));
            } else if segment.contains(['{', '}', '+', '#']) {
                return Err(format!(
                    "segment {segment:?}: a segment is either literal text or a whole {{name}}"
                ));
            } else {
                segments.push(Segment::Literal(segment.to_string()));
            }
        }
        Ok(TopicPattern { segments })
    }

    /// The capture names, in order.
    pub fn captures(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Capture(n) => Some(&**n),
            Segment::Literal(_) => None,
        })
    }

    /// Matches a topic; `None` when it does not fit the pattern.
    pub fn matches(&self, topic: &str) -> Option<Captures> {
        let mut pairs = Vec::with_capacity(self.segments.len());
        let mut parts = topic.split('/');
        for segment in &self.segments {
            let part = parts.next()?;
            match segment {
                Segment::Literal(l) if l == part => {}
                Segment::Literal(_) => return None,
                Segment::Capture(name) => {
                    if !valid_capture(part) {
                        return None;
                    }
                    pairs.push((name.clone(), part.to_string()));
                }
            }
        }
        if parts.next().is_some() {
            return None;
        }
        Some(Captures::new(pairs))
    }

    /// Why a topic does not fit, for the `bad_topic` detail.
    pub fn explain_mismatch(&self, topic: &str) -> String {
        let expected = self.to_string();
        let parts: Vec<&str> = topic.split('/').collect();
        if parts.len() != self.segments.len() {
            return format!(
                "topic {topic:?} has {} levels; expected {} ({expected})",
                parts.len(),
                self.segments.len()
            );
        }
        for (segment, part) in self.segments.iter().zip(&parts) {
            match segment {
                Segment::Literal(l) if l != part => {
                    return format!(
                        "topic {topic:?}: expected {l:?} where it has {part:?} ({expected})"
                    )
                }
                Segment::Capture(name) if !valid_capture(part) => {
                    return format!(
                        "topic {topic:?}: {{{name}}} = {part:?} must be 1-{MAX_CAPTURE_LEN} \
                         characters of A-Z a-z 0-9 _ . : -"
                    )
                }
                _ => {}
            }
        }
        format!("topic {topic:?} does not fit {expected}")
    }
}

impl std::fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, s) in self.segments.iter().enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            match s {
                Segment::Literal(l) => f.write_str(l)?,
                Segment::Capture(n) => write!(f, "{{{n}}}")?,
            }
        }
        Ok(())
    }
}

fn valid_capture(value: &str) -> bool {
    (1..=MAX_CAPTURE_LEN).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern() -> TopicPattern {
        TopicPattern::parse("traksense/{tenant}/{site}/{device}/{kind}").unwrap()
    }

    #[test]
    fn captures_every_named_segment() {
        let c = pattern()
            .matches("traksense/test_alpha/factory/device123/telem")
            .unwrap();
        assert_eq!(c.get("tenant"), Some("test_alpha"));
        assert_eq!(c.get("site"), Some("factory"));
        assert_eq!(c.get("device"), Some("device123"));
        assert_eq!(c.get("kind"), Some("telem"));
        let uuid = "3f2b8c1e-1111-4a5b-9c9d-0123456789ab";
        let c = pattern()
            .matches(&format!("traksense/{uuid}/s.1/dev:7/ack"))
            .unwrap();
        assert_eq!(c.get("tenant"), Some(uuid));
    }

    #[test]
    fn rejects_topics_outside_the_pattern() {
        let p = pattern();
        for topic in [
            "traksense/a/b/c",
            "traksense/a/b/c/telem/extra",
            "other/a/b/c/telem",
            "traksense//b/c/telem",
            "traksense/a b/b/c/telem",
            "traksense/a/b/c/d/",
            "",
        ] {
            assert!(p.matches(topic).is_none(), "{topic:?} must not match");
        }
        let long = "x".repeat(65);
        assert!(p.matches(&format!("traksense/{long}/b/c/telem")).is_none());
        assert!(p
            .matches(&format!("traksense/{}/b/c/telem", "x".repeat(64)))
            .is_some());
    }

    #[test]
    fn explains_why_a_topic_does_not_fit() {
        let p = pattern();
        assert!(p
            .explain_mismatch("traksense/a/b")
            .contains("has 3 levels; expected 5"));
        assert!(p
            .explain_mismatch("other/a/b/c/telem")
            .contains("expected \"traksense\""));
        assert!(p
            .explain_mismatch("traksense/a b/b/c/telem")
            .contains("{tenant}"));
    }

    #[test]
    fn refuses_malformed_patterns() {
        assert!(TopicPattern::parse("a/{}/b").is_err());
        assert!(TopicPattern::parse("a/{x}/{x}").is_err());
        assert!(TopicPattern::parse("a/+/b").is_err());
        assert!(TopicPattern::parse("a/x{y}").is_err());
        assert_eq!(
            pattern().captures().collect::<Vec<_>>(),
            ["tenant", "site", "device", "kind"]
        );
    }
}
