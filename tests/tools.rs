//! The pipeline-editing tools as a person runs them (issue 5): the `runner`
//! binary's `check`, `dry-run`, `test`, `graph` and `schema`, with their
//! output and exit codes, and the catalogue of broken pipelines under
//! `tests/broken/`, each with its expected message (`tests/snapshots/`).
//! That a dry run shows what the live runner stores: tests/dry_run_live.rs.
//!
//! Snapshots are `insta` files: after an intended change of output, run
//! `INSTA_UPDATE=always cargo test --test tools` and review the diff.

mod support;

use std::path::Path;

use serde_json::Value;
use support::cli::{json_lines, runner, ROOT, SHIPPED};

const TELEM: &str = "traksense/test_alpha/factory/device123/telem";

// ── check ──────────────────────────────────────────────────────────────────

/// Every file under tests/broken/ is one kind of mistake. `runner check`
/// must point at it (file:line:col and field path) and say how to fix it
/// (a hint on every diagnostic), and its exact output is the snapshot.
#[test]
fn broken_pipeline_catalogue() {
    let mut files = 0;
    insta::glob!("broken/*.yaml", |path| {
        files += 1;
        let relative = path
            .strip_prefix(ROOT)
            .expect("under the crate")
            .to_string_lossy()
            .into_owned();
        let warning_only = relative.contains("/warning_");
        let text = runner(&["check", &relative], b"");
        assert_eq!(
            text.code,
            if warning_only { 0 } else { 1 },
            "{relative}\n{}",
            text.stdout
        );
        let json = runner(&["check", "--format", "json", &relative], b"");
        let report: Value = serde_json::from_str(&json.stdout).expect("check --format json");
        let diagnostics = report["files"][0]["diagnostics"]
            .as_array()
            .expect("diagnostics");
        assert!(!diagnostics.is_empty(), "{relative}: no diagnostic");
        for d in diagnostics {
            assert!(
                d["line"].is_u64() && d["column"].is_u64(),
                "{relative}: no place: {d}"
            );
            assert!(d["hint"].is_string(), "{relative}: no hint: {d}");
            if !warning_only {
                assert_eq!(d["severity"], "error", "{relative}: {d}");
            }
        }
        if warning_only {
            let denied = runner(&["check", "--deny-warnings", &relative], b"");
            assert_eq!(denied.code, 1, "{relative}: --deny-warnings must fail");
        }
        let mistake = std::fs::read_to_string(path)
            .expect("read")
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("# ")
            .to_string();
        insta::with_settings!({ description => mistake, omit_expression => true }, {
            insta::assert_snapshot!(format!("exit: {}\n{}{}", text.code, text.stdout, text.stderr));
        });
    });
    assert!(
        files >= 25,
        "the catalogue has {files} files; at least 25 wanted"
    );
}

#[test]
fn the_shipped_pipeline_checks_clean_even_with_deny_warnings() {
    let run = runner(&["check", "--deny-warnings", SHIPPED], b"");
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.stdout, "checked 1 file: 0 errors, 0 warnings\n");
}

#[test]
fn check_reports_every_file_as_one_json_document() {
    let run = runner(
        &[
            "check",
            "--format",
            "json",
            SHIPPED,
            "tests/broken/misspelt_next.yaml",
            "tests/broken/warning_unreachable_stage.yaml",
        ],
        b"",
    );
    assert_eq!(run.code, 1);
    let report: Value = serde_json::from_str(&run.stdout).expect("one JSON document");
    assert_eq!(report["ok"], false);
    assert_eq!(report["errors"], 1);
    assert_eq!(report["warnings"], 1);
    let files = report["files"].as_array().expect("files");
    assert_eq!(files.len(), 3);
    assert_eq!(files[0]["ok"], true);
    let error = &files[1]["diagnostics"][0];
    assert_eq!(error["severity"], "error");
    assert_eq!(error["path"], "stages.telemetry.next");
    assert_eq!(error["line"], 23);
    assert_eq!(error["hint"], "did you mean \"ts_measure\"?");
    assert_eq!(files[2]["ok"], true);
    assert_eq!(files[2]["diagnostics"][0]["severity"], "warning");
}

#[test]
fn deny_warnings_turns_a_warning_into_an_error() {
    let run = runner(
        &[
            "check",
            "--deny-warnings",
            "tests/broken/warning_unreachable_stage.yaml",
        ],
        b"",
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.contains(": error: stages.legacy: unreachable"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("made an error by --deny-warnings"));
    assert!(run
        .stdout
        .ends_with("checked 1 file: 1 error, 0 warnings\n"));
}

// ── dry-run ────────────────────────────────────────────────────────────────

#[test]
fn dry_run_shows_rows_and_rejections_as_text() {
    let stdin = std::fs::read(Path::new(ROOT).join("examples/payloads/v1.json")).expect("v1");
    let mut stdin = stdin;
    stdin.extend_from_slice(b"{\"schema\":\"v1\",\"ts\":\"2025-10-07T15:30:00Z\",\"points\":[{\"name\":\"a\",\"t\":\"float\",\"v\":\"25.5\"}]}\n");
    let run = runner(&["dry-run", SHIPPED, "--topic", TELEM], &stdin);
    assert_eq!(run.code, 1, "a rejected payload makes the exit status 1");
    insta::assert_snapshot!(run.stdout);
}

#[test]
fn dry_run_gives_one_json_object_per_payload_from_files_and_directories() {
    let run = runner(
        &[
            "dry-run",
            SHIPPED,
            "--topic",
            TELEM,
            "--format",
            "json",
            "examples/payloads/v1.json",
            "examples/payloads",
        ],
        b"",
    );
    let lines = json_lines(&run.stdout);
    let inputs: Vec<&str> = lines
        .iter()
        .map(|l| l["input"].as_str().expect("input"))
        .collect();
    assert_eq!(
        inputs,
        [
            "examples/payloads/v1.json",
            "examples/payloads/ack.json",
            "examples/payloads/no_zone.json",
            "examples/payloads/parsec.json",
            "examples/payloads/v1.json",
        ]
    );
    assert_eq!(lines[0]["outcome"], "stored");
    assert_eq!(lines[0]["sink"], "ts_measure");
    assert_eq!(lines[0]["sink_type"], "timeseries");
    assert_eq!(
        lines[0]["path"],
        serde_json::json!(["by_kind", "telemetry", "ts_measure"])
    );
    assert_eq!(lines[0]["rows"][0]["point_id"], "temp_agua");
    assert_eq!(lines[0]["rows"][0]["unit"], "°C");
    // An ACK published on a telem topic says "schema": "v1", so it is
    // checked as v1 telemetry, which it is not.
    assert_eq!(lines[1]["outcome"], "rejected");
    assert_eq!(lines[1]["reason"], "schema_error");
    assert_eq!(lines[2]["reason"], "bad_timestamp");
    assert_eq!(lines[2]["by"], "telemetry");
    assert!(lines[2]["detail"]
        .as_str()
        .expect("detail")
        .starts_with("/ts: "));
    assert_eq!(lines[3]["rows"].as_array().expect("rows").len(), 3);
    assert_eq!(run.code, 1);
}

#[test]
fn dry_run_expect_makes_the_exit_status_scriptable() {
    let bad = b"{oops\n[1,2]\n";
    let run = runner(
        &[
            "dry-run", SHIPPED, "--topic", TELEM, "--expect", "rejected", "-",
        ],
        bad,
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(
        run.stdout.ends_with("2 payloads: 0 stored, 2 rejected\n"),
        "{}",
        run.stdout
    );
    let run = runner(
        &["dry-run", SHIPPED, "--topic", TELEM, "--expect", "ok"],
        bad,
    );
    assert_eq!(run.code, 1);
    let good = std::fs::read(Path::new(ROOT).join("examples/payloads/parsec.json")).expect("read");
    let run = runner(&["dry-run", SHIPPED, "--topic", TELEM], &good);
    assert_eq!(run.code, 0, "{}", run.stdout);
    let run = runner(
        &["dry-run", SHIPPED, "--topic", TELEM, "--expect", "rejected"],
        &good,
    );
    assert_eq!(run.code, 1);
}

#[test]
fn usage_errors_exit_2() {
    let missing = runner(
        &["dry-run", SHIPPED, "--topic", TELEM, "no/such/file.json"],
        b"",
    );
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("no/such/file.json: cannot read"),
        "{}",
        missing.stderr
    );
    let no_topic = runner(&["dry-run", SHIPPED], b"");
    assert_eq!(no_topic.code, 2);
    let no_cases = runner(&["test", "tests/broken/cycle.yaml"], b"");
    assert_eq!(no_cases.code, 2);
    assert!(no_cases
        .stderr
        .contains("expected them in tests/broken/cycle.tests.yaml"));
    let broken = runner(
        &["dry-run", "tests/broken/cycle.yaml", "--topic", TELEM],
        b"{}",
    );
    assert_eq!(
        broken.code, 1,
        "a pipeline that does not compile is a problem found"
    );
    assert!(broken.stderr.contains("cycle"), "{}", broken.stderr);
}

// ── test ───────────────────────────────────────────────────────────────────

#[test]
fn the_shipped_test_cases_pass() {
    let run = runner(&["test", SHIPPED], b"");
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.starts_with("pipelines/traksense.tests.yaml\n"));
    assert!(!run.stdout.contains("FAIL"), "{}", run.stdout);
    assert!(
        run.stdout.ends_with("27 cases: 27 passed, 0 failed\n"),
        "{}",
        run.stdout
    );
    // The test file can be named instead of the pipeline.
    let run = runner(&["test", "pipelines/traksense.tests.yaml"], b"");
    assert_eq!(run.code, 0);
}

#[test]
fn the_shipped_test_cases_cover_every_reason_but_db_rejected() {
    let text = std::fs::read_to_string(Path::new(ROOT).join("pipelines/traksense.tests.yaml"))
        .expect("read");
    for reason in traksense_ingest::envelope::Reason::ALL {
        let covered = text.contains(&format!("reason: {reason}"));
        let needs_database = reason == traksense_ingest::envelope::Reason::DbRejected;
        assert_eq!(covered, !needs_database, "{reason}");
    }
}

#[test]
fn failing_cases_show_expected_and_actual_side_by_side() {
    let run = runner(&["test", "tests/fixtures/failing.yaml"], b"");
    assert_eq!(run.code, 1);
    insta::assert_snapshot!(run.stdout);
}

/// `--format json`: one object per case (expected and actual as JSON, the
/// dry run's own object as `actual`) and a summary line; same exit codes.
#[test]
fn test_results_as_json_lines() {
    let run = runner(
        &["test", "tests/fixtures/failing.yaml", "--format", "json"],
        b"",
    );
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let lines = json_lines(&run.stdout);
    let (summary, cases) = lines.split_last().expect("a summary line");
    let failing = cases.iter().filter(|c| c["passed"] == false).count();
    assert_eq!(
        summary["failed"].as_u64(),
        Some(failing as u64),
        "{summary}"
    );
    assert_eq!(summary["cases"].as_u64(), Some(cases.len() as u64));
    let failed = cases
        .iter()
        .find(|c| c["case"] == "wrong value, missing unit and an extra row")
        .expect("the case of the README's example");
    assert_eq!(failed["passed"], false);
    assert_eq!(failed["file"], "tests/fixtures/failing.tests.yaml");
    assert!(failed["place"].as_str().is_some_and(|p| p.contains(':')));
    let v_num = failed["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .find(|l| l["what"] == "row 1 v_num")
        .expect("a v_num line");
    assert_eq!(
        (&v_num["expected"], &v_num["actual"], &v_num["ok"]),
        (
            &serde_json::json!(2),
            &serde_json::json!(1.5),
            &serde_json::json!(false)
        )
    );
    assert_eq!(failed["actual"]["outcome"], "stored");

    let run = runner(&["test", SHIPPED, "--format", "json"], b"");
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let lines = json_lines(&run.stdout);
    assert_eq!(
        lines.last(),
        Some(&serde_json::json!({"cases": 27, "passed": 27, "failed": 0}))
    );
}

// ── graph and schema ───────────────────────────────────────────────────────

#[test]
fn graph_draws_the_shipped_pipeline_in_mermaid_and_dot() {
    let mermaid = runner(&["graph", SHIPPED], b"");
    assert_eq!(mermaid.code, 0);
    insta::assert_snapshot!("graph_mermaid", mermaid.stdout);
    let dot = runner(&["graph", SHIPPED, "--format", "dot"], b"");
    assert_eq!(dot.code, 0);
    insta::assert_snapshot!("graph_dot", dot.stdout);
}

#[test]
fn graph_marks_what_no_route_reaches() {
    let run = runner(
        &["graph", "tests/broken/warning_unreachable_stage.yaml"],
        b"",
    );
    assert_eq!(run.code, 0);
    assert!(
        run.stdout.contains("    class legacy unreachable\n"),
        "{}",
        run.stdout
    );
}

#[test]
fn schema_is_valid_and_accepts_exactly_what_the_loader_accepts() {
    let run = runner(&["schema"], b"");
    assert_eq!(run.code, 0);
    let schema: Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
    let yaml = |file: &str| -> Value {
        let text = std::fs::read_to_string(Path::new(ROOT).join(file)).expect("read");
        yaml_serde::from_str(&text).expect("YAML")
    };
    for valid in [
        SHIPPED,
        "tests/fixtures/failing.yaml",
        "tests/broken/warning_unreachable_stage.yaml",
        "tests/broken/misspelt_next.yaml", // names are the compiler's business
    ] {
        let errors: Vec<String> = validator
            .iter_errors(&yaml(valid))
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{valid}: {errors:#?}");
    }
    for invalid in [
        "tests/broken/unknown_field.yaml",
        "tests/broken/unknown_stage_type.yaml",
        "tests/broken/unknown_sink_type.yaml",
        "tests/broken/unknown_format.yaml",
        "tests/broken/not_a_number.yaml",
        "tests/broken/missing_required_field.yaml",
        "tests/broken/invalid_stage_name.yaml",
        "tests/broken/unknown_top_level_key.yaml",
    ] {
        assert!(
            !validator.is_valid(&yaml(invalid)),
            "{invalid} must be refused"
        );
    }
}
