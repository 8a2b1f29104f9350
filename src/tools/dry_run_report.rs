//! How `runner dry-run` shows its traces: for people, a block per payload
//! (where it went, the rows as a table, or the reason and detail) and a
//! closing count; for scripts, one JSON object per payload.

use serde_json::{json, Value};

use super::dry_run::{Outcome, Trace};
use super::rows::Row;
use super::table;

/// What a scripted dry run expects of every payload (`--expect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expectation {
    /// Every payload is stored (the default).
    Ok,
    /// Every payload is rejected.
    Rejected,
}

/// Whether every trace meets `expect`.
pub fn meets(traces: &[(String, Trace)], expect: Expectation) -> bool {
    traces.iter().all(|(_, t)| match expect {
        Expectation::Ok => !t.outcome.is_rejected(),
        Expectation::Rejected => t.outcome.is_rejected(),
    })
}

/// Text for people: one block per `(input label, trace)`, then a count.
pub fn text(traces: &[(String, Trace)]) -> String {
    let mut out = String::new();
    for (label, trace) in traces {
        out.push_str(&block(label, trace));
        out.push('\n');
    }
    let rejected = traces
        .iter()
        .filter(|(_, t)| t.outcome.is_rejected())
        .count();
    let n = traces.len();
    out.push_str(&format!(
        "{n} payload{}: {} stored, {rejected} rejected\n",
        if n == 1 { "" } else { "s" },
        n - rejected
    ));
    out
}

/// One payload's block.
pub fn block(label: &str, trace: &Trace) -> String {
    let path = trace.path.join(" → ");
    match &trace.outcome {
        Outcome::Stored {
            sink,
            kind,
            table,
            rows,
        } => {
            let n = rows.len();
            let mut out = format!(
                "{label}: stored in {sink} ({} → {table}), {n} row{}\n  topic: {}\n  path: {path}\n",
                kind.name(),
                if n == 1 { "" } else { "s" },
                trace.topic
            );
            out.push_str(&rows_table(rows, "  "));
            out
        }
        Outcome::Rejected {
            sink,
            by,
            reason,
            detail,
        } => format!(
            "{label}: rejected by {by}: {reason} → {sink}\n  topic: {}\n  path: {path}\n  detail: {detail}\n",
            trace.topic
        ),
    }
}

/// Rows as an aligned table of the columns that hold a value in at least
/// one row; NULL shows as an empty cell, strings without quotes, JSON
/// compactly.
pub fn rows_table(rows: &[Row], indent: &str) -> String {
    let Some(first) = rows.first() else {
        return String::new();
    };
    let columns: Vec<&String> = first
        .keys()
        .filter(|c| rows.iter().any(|r| r.get(*c).is_some_and(|v| !v.is_null())))
        .collect();
    let mut lines = vec![columns.iter().map(|c| c.to_string()).collect::<Vec<_>>()];
    for row in rows {
        lines.push(
            columns
                .iter()
                .map(|c| row.get(*c).map_or_else(String::new, cell))
                .collect(),
        );
    }
    table::render(&lines, indent)
}

/// A value as a table cell.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// For scripts: one JSON object per payload.
pub fn json_line(label: &str, trace: &Trace) -> Value {
    match &trace.outcome {
        Outcome::Stored {
            sink,
            kind,
            table,
            rows,
        } => json!({
            "input": label,
            "topic": trace.topic,
            "path": trace.path,
            "outcome": "stored",
            "sink": sink,
            "sink_type": kind.name(),
            "table": table,
            "rows": rows,
        }),
        Outcome::Rejected {
            sink,
            by,
            reason,
            detail,
        } => json!({
            "input": label,
            "topic": trace.topic,
            "path": trace.path,
            "outcome": "rejected",
            "sink": sink,
            "by": by,
            "reason": reason.as_str(),
            "detail": detail,
        }),
    }
}

/// Every trace as JSON lines.
pub fn json_lines(traces: &[(String, Trace)]) -> String {
    let mut out = String::new();
    for (label, trace) in traces {
        out.push_str(&json_line(label, trace).to_string());
        out.push('\n');
    }
    out
}
