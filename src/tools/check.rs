//! `runner check`: compiles pipeline files exactly as `runner run` does
//! (schemas loaded, formats resolved, every name and route checked) without
//! connecting anything, and reports every problem with its place, its field
//! path, what is wrong and a hint, then a one-line summary.
//!
//! Errors stop a pipeline from running; warnings (an unreachable stage, a
//! format no payload can select…) do not, unless `--deny-warnings` makes
//! them errors, for CI.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::config::error::{ConfigError, ConfigErrors};
use crate::graph::compile::compile_with_env;

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The pipeline does not compile.
    Error,
    /// The pipeline compiles, but probably does not do what was meant.
    Warning,
}

impl Severity {
    /// The word shown before the message.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One problem in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error, or warning (a denied warning is an error).
    pub severity: Severity,
    /// Whether it is a warning made an error by `--deny-warnings`.
    pub denied: bool,
    /// The place, field path, message and hint.
    pub error: ConfigError,
}

/// The check of one pipeline file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCheck {
    /// The pipeline file, as given.
    pub file: PathBuf,
    /// Its problems, errors first in file order, then warnings.
    pub diagnostics: Vec<Diagnostic>,
}

impl FileCheck {
    /// Whether the file passes: no errors (denied warnings included).
    pub fn passed(&self) -> bool {
        !self
            .diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }
}

/// Compiles `file` with `env` as the environment and collects its problems.
pub fn check_file(
    file: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    deny_warnings: bool,
) -> FileCheck {
    let (errors, warnings) = match compile_with_env(file, env) {
        Ok(plan) => (Vec::new(), plan.warnings),
        Err(ConfigErrors(errors)) => (errors, Vec::new()),
    };
    let warning_severity = if deny_warnings {
        Severity::Error
    } else {
        Severity::Warning
    };
    let diagnostics = errors
        .into_iter()
        .map(|error| Diagnostic {
            severity: Severity::Error,
            denied: false,
            error,
        })
        .chain(warnings.into_iter().map(|error| Diagnostic {
            severity: warning_severity,
            denied: deny_warnings,
            error,
        }))
        .collect();
    FileCheck {
        file: file.to_path_buf(),
        diagnostics,
    }
}

/// The checks of every file given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// One per file, in the order given.
    pub files: Vec<FileCheck>,
}

impl CheckReport {
    /// Checks every file.
    pub fn run(
        files: &[PathBuf],
        env: &dyn Fn(&str) -> Option<String>,
        deny_warnings: bool,
    ) -> CheckReport {
        CheckReport {
            files: files
                .iter()
                .map(|f| check_file(f, env, deny_warnings))
                .collect(),
        }
    }

    /// Whether every file passes.
    pub fn passed(&self) -> bool {
        self.files.iter().all(FileCheck::passed)
    }

    fn count(&self, severity: Severity) -> usize {
        self.files
            .iter()
            .flat_map(|f| &f.diagnostics)
            .filter(|d| d.severity == severity)
            .count()
    }

    /// Text for people: every problem, then a one-line summary.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for file in &self.files {
            for d in &file.diagnostics {
                out.push_str(&diagnostic_text(d));
                out.push('\n');
            }
        }
        let n = self.files.len();
        let errors = self.count(Severity::Error);
        let warnings = self.count(Severity::Warning);
        out.push_str(&format!(
            "checked {n} file{}: {}, {}\n",
            plural(n),
            counted(errors, "error"),
            counted(warnings, "warning")
        ));
        out
    }

    /// One JSON document, for editors and CI.
    pub fn json(&self) -> Value {
        let files: Vec<Value> = self
            .files
            .iter()
            .map(|f| {
                json!({
                    "file": f.file.display().to_string(),
                    "ok": f.passed(),
                    "diagnostics": f.diagnostics.iter().map(diagnostic_json).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "ok": self.passed(),
            "errors": self.count(Severity::Error),
            "warnings": self.count(Severity::Warning),
            "files": files,
        })
    }
}

/// `file:line:col: error: path: message`, then the hint on its own line.
pub fn diagnostic_text(d: &Diagnostic) -> String {
    let e = &d.error;
    let mut out = e.file.display().to_string();
    if let Some(loc) = e.location {
        out.push_str(&format!(":{}:{}", loc.line, loc.column));
    }
    out.push_str(&format!(": {}: ", d.severity.as_str()));
    if !e.path.is_empty() {
        out.push_str(&format!("{}: ", e.path));
    }
    out.push_str(&e.message);
    if let Some(hint) = &e.hint {
        out.push_str(&format!("\n  hint: {hint}"));
    }
    if d.denied {
        out.push_str("\n  note: a warning, made an error by --deny-warnings");
    }
    out
}

fn diagnostic_json(d: &Diagnostic) -> Value {
    let e = &d.error;
    json!({
        "severity": d.severity.as_str(),
        "denied_warning": d.denied,
        "file": e.file.display().to_string(),
        "line": e.location.map(|l| l.line),
        "column": e.location.map(|l| l.column),
        "path": e.path,
        "message": e.message,
        "hint": e.hint,
    })
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn counted(n: usize, word: &str) -> String {
    format!("{n} {word}{}", plural(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::error::Location;

    fn diagnostic(severity: Severity, denied: bool) -> Diagnostic {
        Diagnostic {
            severity,
            denied,
            error: ConfigError {
                file: "p.yaml".into(),
                location: Some(Location { line: 3, column: 7 }),
                path: "stages.a".into(),
                message: "unreachable: no route from the source leads here".into(),
                hint: Some("route to it, or remove it".into()),
            },
        }
    }

    #[test]
    fn shows_severity_place_path_hint_and_denial() {
        assert_eq!(
            diagnostic_text(&diagnostic(Severity::Warning, false)),
            "p.yaml:3:7: warning: stages.a: unreachable: no route from the source leads here\n  \
             hint: route to it, or remove it"
        );
        assert!(diagnostic_text(&diagnostic(Severity::Error, true))
            .ends_with("note: a warning, made an error by --deny-warnings"));
    }

    #[test]
    fn a_denied_warning_fails_the_file() {
        let mut file = FileCheck {
            file: "p.yaml".into(),
            diagnostics: vec![diagnostic(Severity::Warning, false)],
        };
        assert!(file.passed());
        file.diagnostics = vec![diagnostic(Severity::Error, true)];
        assert!(!file.passed());
        let report = CheckReport { files: vec![file] };
        assert_eq!(report.json()["errors"], 1);
        assert!(report
            .text()
            .ends_with("checked 1 file: 1 error, 0 warnings\n"));
    }
}
