//! Running `runner test` cases and judging them: each case's payload goes
//! through [`dry_run`], and what it became is compared with what the case
//! expects. A failure is shown as a side-by-side table, expected against
//! actual, one line per thing compared, the lines that differ marked `✗`.
//!
//! Values compare as the database would see them: numbers by value (`42`
//! equals `42.0`), timestamps by instant (`…T15:30:00+02:00` equals
//! `…T13:30:00Z`), JSON objects whatever their key order.

use chrono::DateTime;
use serde_json::{json, Value};

use crate::graph::plan::Plan;

use super::cases::{Case, CaseFile, Expect};
use super::dry_run::{dry_run, DryRunError, Outcome, Trace};
use super::dry_run_report::{json_line, rows_table};
use super::rows::Row;
use super::table;

/// One thing compared: what the case expects against what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// What is compared, e.g. `reason` or `row 1 v_num`.
    pub what: String,
    /// The expected value, as JSON text.
    pub expected: String,
    /// The actual value, as JSON text.
    pub actual: String,
    /// Whether they agree.
    pub ok: bool,
}

/// The judgement of one case.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The case's name.
    pub name: String,
    /// `file:line:col` of the case.
    pub place: String,
    /// Everything compared.
    pub lines: Vec<Line>,
    /// What actually happened.
    pub trace: Trace,
}

impl Verdict {
    /// Whether everything compared agrees.
    pub fn passed(&self) -> bool {
        self.lines.iter().all(|l| l.ok)
    }
}

/// Runs every case of `file` through `plan`.
pub fn run_cases(plan: &Plan, file: &CaseFile) -> Result<Vec<Verdict>, DryRunError> {
    file.cases
        .iter()
        .map(|case| {
            let trace = dry_run(plan, &case.topic, case.payload.clone())?;
            let mut place = file.file.display().to_string();
            if let Some(l) = case.location {
                place.push_str(&format!(":{}:{}", l.line, l.column));
            }
            Ok(Verdict {
                name: case.name.clone(),
                place,
                lines: judge(case, &trace.outcome),
                trace,
            })
        })
        .collect()
}

fn line(
    what: impl Into<String>,
    expected: impl Into<String>,
    actual: impl Into<String>,
    ok: bool,
) -> Line {
    Line {
        what: what.into(),
        expected: expected.into(),
        actual: actual.into(),
        ok,
    }
}

/// Compares what `case` expects with `outcome`.
pub fn judge(case: &Case, outcome: &Outcome) -> Vec<Line> {
    match (&case.expect, outcome) {
        (Expect::Sink(want), outcome) => {
            let got = sink_of(outcome);
            vec![line("sink", want, got, want == got)]
        }
        (
            Expect::Rejected { reason, detail },
            Outcome::Rejected {
                reason: got,
                detail: got_detail,
                by,
                ..
            },
        ) => {
            let mut lines = vec![line(
                "reason",
                reason.as_str(),
                format!("{got} (by {by})"),
                reason == got,
            )];
            if let Some(part) = detail {
                lines.push(line(
                    "detail contains",
                    format!("{part:?}"),
                    format!("{got_detail:?}"),
                    got_detail.contains(part.as_str()),
                ));
            }
            lines
        }
        (Expect::Rejected { reason, .. }, Outcome::Stored { sink, rows, .. }) => vec![line(
            "outcome",
            format!("rejected: {reason}"),
            format!("stored in {sink}, {} row(s)", rows.len()),
            false,
        )],
        (
            Expect::Rows { sink, rows },
            Outcome::Rejected {
                reason, detail, by, ..
            },
        ) => vec![
            line(
                "outcome",
                format!(
                    "stored in {}, {} row(s)",
                    sink.as_deref().unwrap_or("a data sink"),
                    rows.len()
                ),
                format!("rejected by {by}: {reason}"),
                false,
            ),
            // Shown for context; the outcome line already fails the case.
            line("detail", "", detail.clone(), true),
        ],
        (
            Expect::Rows { sink, rows },
            Outcome::Stored {
                sink: got_sink,
                rows: got_rows,
                ..
            },
        ) => {
            let mut lines = Vec::new();
            if let Some(want) = sink {
                lines.push(line("sink", want, got_sink, want == got_sink));
            }
            lines.push(line(
                "rows",
                rows.len().to_string(),
                got_rows.len().to_string(),
                rows.len() == got_rows.len(),
            ));
            lines.extend(compare_rows(rows, got_rows));
            lines
        }
    }
}

fn sink_of(outcome: &Outcome) -> &str {
    match outcome {
        Outcome::Stored { sink, .. } | Outcome::Rejected { sink, .. } => sink,
    }
}

/// Row by row, the columns each expected row lists; an actual row with no
/// expected counterpart is shown whole.
fn compare_rows(expected: &[Row], actual: &[Row]) -> Vec<Line> {
    let mut lines = Vec::new();
    for (i, want) in expected.iter().enumerate() {
        let got = actual.get(i);
        for (column, value) in want {
            let what = format!("row {} {column}", i + 1);
            match got {
                Some(row) => {
                    let got_value = row.get(column);
                    let shown =
                        got_value.map_or_else(|| "(no such column)".to_string(), Value::to_string);
                    let ok = got_value.is_some_and(|g| values_match(value, g));
                    lines.push(line(what, value.to_string(), shown, ok));
                }
                None => lines.push(line(what, value.to_string(), "(no row)", false)),
            }
        }
    }
    for (i, extra) in actual.iter().enumerate().skip(expected.len()) {
        let shown: Vec<String> = extra
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        lines.push(line(
            format!("row {}", i + 1),
            "(no row)",
            shown.join(" "),
            false,
        ));
    }
    lines
}

/// Whether an expected value agrees with an actual one (see the module doc).
pub fn values_match(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::String(a), Value::String(b)) => {
            a == b
                || matches!(
                    (DateTime::parse_from_rfc3339(a), DateTime::parse_from_rfc3339(b)),
                    (Ok(x), Ok(y)) if x == y
                )
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| values_match(x, y))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, x)| b.get(k).is_some_and(|y| values_match(x, y)))
        }
        (a, b) => a == b,
    }
}

/// Text for people: `ok`/`FAIL` per case, the side-by-side table and the
/// actual rows under each failure.
pub fn text(file: &CaseFile, verdicts: &[Verdict]) -> String {
    let mut out = format!("{}\n", file.file.display());
    for v in verdicts {
        if v.passed() {
            out.push_str(&format!("  ok    {}\n", v.name));
            continue;
        }
        out.push_str(&format!("  FAIL  {}  ({})\n", v.name, v.place));
        let mut rows = vec![vec![
            String::new(),
            String::new(),
            "expected".into(),
            "actual".into(),
        ]];
        for l in &v.lines {
            let mark = if l.ok { " " } else { "✗" };
            rows.push(vec![
                mark.into(),
                l.what.clone(),
                l.expected.clone(),
                l.actual.clone(),
            ]);
        }
        out.push_str(&table::render(&rows, "        "));
        if let Outcome::Stored { rows, .. } = &v.trace.outcome {
            if !rows.is_empty() {
                out.push_str("        actual rows:\n");
                out.push_str(&rows_table(rows, "          "));
            }
        }
    }
    out
}

/// For scripts and CI: one JSON object per case — its file, name, place,
/// whether it passed, every line compared, and the dry run's own JSON
/// (`runner dry-run --format json`) as `actual`.
pub fn json_lines(file: &CaseFile, verdicts: &[Verdict]) -> String {
    let mut out = String::new();
    for v in verdicts {
        let lines: Vec<Value> = v
            .lines
            .iter()
            .map(|l| {
                json!({
                    "what": l.what,
                    "expected": as_json(&l.expected),
                    "actual": as_json(&l.actual),
                    "ok": l.ok,
                })
            })
            .collect();
        let case = json!({
            "file": file.file.display().to_string(),
            "case": v.name,
            "place": v.place,
            "passed": v.passed(),
            "lines": lines,
            "actual": json_line(&v.name, &v.trace),
        });
        out.push_str(&case.to_string());
        out.push('\n');
    }
    out
}

/// A compared value back as JSON (it is kept as JSON text for the table);
/// a placeholder such as `(no row)` stays a string.
fn as_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// The closing JSON line: `{"cases": N, "passed": P, "failed": F}`.
pub fn summary_json(verdicts: &[Verdict]) -> String {
    let (passed, failed) = tally(verdicts);
    let line = json!({ "cases": verdicts.len(), "passed": passed, "failed": failed });
    format!("{line}\n")
}

/// The closing line: `N cases: P passed, F failed`.
pub fn summary(verdicts: &[Verdict]) -> String {
    let (passed, failed) = tally(verdicts);
    format!(
        "{} cases: {passed} passed, {failed} failed\n",
        verdicts.len()
    )
}

/// Cases passed and failed, for both summaries.
fn tally(verdicts: &[Verdict]) -> (usize, usize) {
    let passed = verdicts.iter().filter(|v| v.passed()).count();
    (passed, verdicts.len() - passed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_timestamps_and_objects_compare_by_meaning() {
        assert!(values_match(&json!(42), &json!(42.0)));
        assert!(values_match(
            &json!("2025-10-07T15:30:00+02:00"),
            &json!("2025-10-07T13:30:00Z")
        ));
        assert!(!values_match(&json!("RUN"), &json!("STOP")));
        assert!(values_match(
            &json!({"a": 1, "b": [true]}),
            &json!({"b": [true], "a": 1.0})
        ));
        assert!(!values_match(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        assert!(!values_match(&json!(null), &json!(0)));
    }

    #[test]
    fn rows_compare_only_the_listed_columns_and_count() {
        let want: Vec<Row> = vec![json!({"point_id": "a", "v_num": 1})
            .as_object()
            .unwrap()
            .clone()];
        let got: Vec<Row> = vec![
            json!({"point_id": "a", "v_num": 1.0, "unit": "x"})
                .as_object()
                .unwrap()
                .clone(),
            json!({"point_id": "b", "v_num": 2.0, "unit": null})
                .as_object()
                .unwrap()
                .clone(),
        ];
        let lines = compare_rows(&want, &got);
        assert!(lines[0].ok && lines[1].ok);
        assert_eq!(lines[2].what, "row 2");
        assert_eq!(lines[2].actual, "point_id=\"b\" v_num=2.0");
        assert!(!lines[2].ok);
    }
}
