//! A strict reader of the Prometheus text exposition format (0.0.4), for
//! asserting on `/metrics`: every line must parse, every sample must belong
//! to a family declared by `# TYPE`, and label sets must be well formed.

use std::collections::BTreeMap;

/// Parsed samples: `name{label="value",…}` (labels sorted) → value; and
/// family name → type.
#[derive(Debug, Default)]
pub struct Exposition {
    /// Sample key → value.
    pub samples: BTreeMap<String, f64>,
    /// Family → `counter`, `gauge`, `histogram`, ….
    pub types: BTreeMap<String, String>,
}

impl Exposition {
    /// The value of `key` (e.g. `ingest_errors_total{reason="parse_error"}`).
    pub fn get(&self, key: &str) -> Option<f64> {
        self.samples.get(key).copied()
    }

    /// The value of `key`, which must exist.
    #[track_caller]
    pub fn value(&self, key: &str) -> f64 {
        self.get(key).unwrap_or_else(|| {
            let names: Vec<&String> = self.samples.keys().collect();
            panic!("no sample {key}; have {names:#?}")
        })
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses `text`; `Err` names the first line that is not valid exposition.
pub fn parse(text: &str) -> Result<Exposition, String> {
    let mut out = Exposition::default();
    for (n, line) in text.lines().enumerate() {
        let fail = |why: &str| format!("line {}: {why}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("HELP"), Some(name), _) if valid_name(name) => {}
                (Some("TYPE"), Some(name), Some(kind)) if valid_name(name) => {
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(fail("unknown type"));
                    }
                    if out
                        .types
                        .insert(name.to_string(), kind.to_string())
                        .is_some()
                    {
                        return Err(fail("family declared twice"));
                    }
                }
                _ => return Err(fail("bad comment")),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').ok_or_else(|| fail("no value"))?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().map_err(|_| fail("value is not a number"))?,
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .ok_or_else(|| fail("unclosed labels"))?;
                (name, parse_labels(body).map_err(|e| fail(&e))?)
            }
            None => (series, Vec::new()),
        };
        if !valid_name(name) {
            return Err(fail("invalid metric name"));
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|base| out.types.get(*base).map(String::as_str) == Some("histogram"))
            .unwrap_or(name);
        if !out.types.contains_key(family) {
            return Err(fail("sample without a # TYPE"));
        }
        let mut labels = labels;
        labels.sort();
        let key = if labels.is_empty() {
            name.to_string()
        } else {
            let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            format!("{name}{{{}}}", inner.join(","))
        };
        if out.samples.insert(key, value).is_some() {
            return Err(fail("duplicate sample"));
        }
    }
    Ok(out)
}

fn parse_labels(body: &str) -> Result<Vec<(String, String)>, String> {
    let mut labels = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (name, after) = rest.split_once("=\"").ok_or("label without =\"")?;
        if !valid_name(name) || name.starts_with("__") {
            return Err(format!("invalid label name {name:?}"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err("dangling escape".into()),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => return Err("unclosed label value".into()),
            }
        };
        labels.push((name.to_string(), value));
        rest = after[end + 1..].trim_start_matches(',');
    }
    Ok(labels)
}
