//! Environment interpolation, applied after parsing and to string values
//! only, so a `${…}` in a comment or a key never changes the file's meaning
//! and every position stays true.
//!
//! Syntax: `${VAR}` (VAR must be set), `${VAR:-default}` (default when VAR is
//! unset or empty), `$${` for a literal `${`.

use serde_json::Value;

use super::locate::{index, join};

/// A `${VAR}` that could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterpolationError {
    /// Field path of the string that holds the reference.
    pub path: String,
    /// What went wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

/// Replaces references in every string of `value`, in place; returns every
/// reference that could not be resolved.
pub fn interpolate(
    value: &mut Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<InterpolationError> {
    let mut errors = Vec::new();
    walk(value, path, env, &mut errors);
    errors
}

fn walk(
    value: &mut Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<InterpolationError>,
) {
    match value {
        Value::String(s) if s.contains('$') => match expand(s, env) {
            Ok(expanded) => *s = expanded,
            Err((message, hint)) => errors.push(InterpolationError {
                path: path.to_string(),
                message,
                hint,
            }),
        },
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                walk(item, &index(path, i), env, errors);
            }
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                walk(v, &join(path, k), env, errors);
            }
        }
        _ => {}
    }
}

/// Expands one string; `Err((message, hint))` on the first bad reference.
pub fn expand(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, (String, String)> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(body) = tail.strip_prefix("${") {
            let Some(end) = body.find('}') else {
                return Err((
                    format!("unclosed `${{` in {s:?}"),
                    "close the reference with `}`, or write `$${` for a literal `${`".into(),
                ));
            };
            let reference = &body[..end];
            let (name, default) = match reference.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (reference, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err((
                    format!("`${{{reference}}}` is not a valid variable reference"),
                    "write ${NAME} or ${NAME:-default}; NAME is letters, digits and _".into(),
                ));
            }
            match (
                env(name).filter(|v| !v.is_empty() || default.is_none()),
                default,
            ) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err((
                        format!("environment variable {name} is not set"),
                        format!("set {name}, or give a default: ${{{name}:-value}}"),
                    ))
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("db".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_set_default_empty_and_escaped() {
        assert_eq!(expand("pg://${HOST}/x", &env).unwrap(), "pg://db/x");
        assert_eq!(expand("${NOPE:-5000}", &env).unwrap(), "5000");
        assert_eq!(expand("${EMPTY:-d}", &env).unwrap(), "d");
        assert_eq!(expand("${EMPTY}", &env).unwrap(), "");
        assert_eq!(
            expand("$${HOST} costs $5", &env).unwrap(),
            "${HOST} costs $5"
        );
    }

    #[test]
    fn reports_every_unset_variable_with_its_path() {
        let mut v = json!({"a": "${X}", "b": ["ok", "${Y}"], "c": 3});
        let errors = interpolate(&mut v, "", &env);
        let paths: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["a", "b[1]"]);
        assert!(errors[0].hint.contains("${X:-value}"));
    }

    #[test]
    fn rejects_malformed_references() {
        assert!(expand("${", &env).is_err());
        assert!(expand("${a b}", &env).is_err());
    }
}
