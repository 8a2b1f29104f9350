//! Configuration errors a user can act on: each names the file, line and
//! column, the field path, what is wrong and, where we can tell, how to fix it.
//! They are collected, never thrown one at a time: loading and compiling
//! report every problem at once.

use std::fmt;
use std::path::PathBuf;

/// A 1-based line and column in the pipeline file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

/// One problem in a pipeline file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The pipeline file (or schema file) the problem is in.
    pub file: PathBuf,
    /// Where in the file, when it can be told.
    pub location: Option<Location>,
    /// The field path, e.g. `stages.by_kind.routes.telem`; empty for the root.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when we can tell.
    pub hint: Option<String>,
}

impl ConfigError {
    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(loc) = self.location {
            write!(f, ":{}:{}", loc.line, loc.column)?;
        }
        if self.path.is_empty() {
            write!(f, ": {}", self.message)?;
        } else {
            write!(f, ": {}: {}", self.path, self.message)?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every problem found in one pipeline file, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for error in &self.0 {
            writeln!(f, "{error}")?;
        }
        let n = self.0.len();
        write!(f, "{n} error{}", if n == 1 { "" } else { "s" })
    }
}

/// Suggests the closest of `candidates` to a misspelt `name`.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| format!("did you mean {c:?}?"))
}

/// The hint for a name that is not one of `known`: the closest one, or
/// else the whole list.
pub fn suggest(name: &str, known: &[&str]) -> String {
    did_you_mean(name, known.iter().copied()).unwrap_or_else(|| {
        let mut sorted = known.to_vec();
        sorted.sort_unstable();
        format!("expected one of: {}", sorted.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            did_you_mean("ts_mesure", ["ts_measure", "cmd_ack"]).as_deref(),
            Some("did you mean \"ts_measure\"?")
        );
        assert_eq!(did_you_mean("zzz", ["ts_measure", "cmd_ack"]), None);
        assert_eq!(suggest("zzz", &["b", "a"]), "expected one of: a, b");
    }

    #[test]
    fn displays_file_line_column_path_and_hint() {
        let e = ConfigError {
            file: "p.yaml".into(),
            location: Some(Location { line: 3, column: 7 }),
            path: "stages.a.next".into(),
            message: "no stage or sink named \"b\"".into(),
            hint: None,
        }
        .with_hint("did you mean \"c\"?");
        assert_eq!(
            e.to_string(),
            "p.yaml:3:7: stages.a.next: no stage or sink named \"b\"\n  hint: did you mean \"c\"?"
        );
    }
}
