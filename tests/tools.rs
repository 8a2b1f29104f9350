//! The pipeline-editing tools as a person runs them (issue 5): the `runner`
//! binary's `check`, `dry-run`, `test`, `graph` and `schema`, with their
//! output and exit codes; the catalogue of broken pipelines under
//! `tests/broken/`, each with its expected message (`tests/snapshots/`);
//! and the promise that a dry run shows what the live runner stores.
//!
//! Snapshots are `insta` files: after an intended change of output, run
//! `INSTA_UPDATE=always cargo test --test tools` and review the diff.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;
use support::pipeline::TestPipeline;
use traksense_ingest::tools::verdict::values_match;

const RUNNER: &str = env!("CARGO_BIN_EXE_runner");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const SHIPPED: &str = "pipelines/traksense.yaml";
const TELEM: &str = "traksense/test_alpha/factory/device123/telem";

/// What one run of the binary did.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// The variables pipeline files read, unset so that output is the same on
/// every machine (`runner graph` shows the broker address, for one).
const PIPELINE_VARIABLES: [&str; 10] = [
    "MQTT_URL",
    "MQTT_CLIENT_ID",
    "MQTT_USERNAME",
    "MQTT_PASSWORD",
    "DATABASE_URL",
    "INGEST_QUEUE_MAX",
    "INGEST_BATCH_SIZE",
    "INGEST_BATCH_MS",
    "DB_POOL_MAX",
    "CATALOGUE_UNSET_BROKER_URL",
];

/// Runs `runner ARGS` from the crate root (so paths in the output are the
/// relative paths given), with `stdin` as its standard input.
fn runner(args: &[&str], stdin: &[u8]) -> Run {
    let mut command = Command::new(RUNNER);
    for name in PIPELINE_VARIABLES {
        command.env_remove(name);
    }
    let mut child = command
        .args(args)
        .current_dir(ROOT)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runner starts");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(stdin)
        .expect("write stdin");
    let out = child.wait_with_output().expect("runner ends");
    Run {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
    }
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

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

// ── dry run = live run ─────────────────────────────────────────────────────

/// What `runner dry-run --format json` says one payload becomes.
fn dry_run(topic: &str, payload: &str) -> Value {
    let run = runner(
        &["dry-run", SHIPPED, "--topic", topic, "--format", "json"],
        payload.as_bytes(),
    );
    let mut lines = json_lines(&run.stdout);
    assert_eq!(lines.len(), 1, "{}", run.stdout);
    lines.remove(0)
}

/// Sorts rows by the columns that identify them, so both sides line up.
fn sorted(mut rows: Vec<Value>, keys: &[&str]) -> Vec<Value> {
    let key = |row: &Value| -> Vec<String> {
        keys.iter()
            .map(|k| match &row[*k] {
                Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
                    .map(|t| t.timestamp_micros().to_string())
                    .unwrap_or_else(|_| s.clone()),
                other => other.to_string(),
            })
            .collect()
    };
    rows.sort_by_key(key);
    rows
}

#[track_caller]
fn assert_same_rows(table: &str, dry: &[Value], live: &[Value]) {
    assert_eq!(
        dry.len(),
        live.len(),
        "{table}: dry run {dry:#?}\nlive {live:#?}"
    );
    for (d, l) in dry.iter().zip(live) {
        assert!(values_match(d, l), "{table}: dry run\n{d:#}\nlive\n{l:#}");
    }
}

/// The dry run and the real run share the same stage code: the same
/// payloads through `runner dry-run` and through the live pipeline (MQTT
/// broker, PostgreSQL) give identical rows, and identical dead letters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_rows_are_what_the_live_pipeline_stores() {
    let telem = |device: &str| format!("traksense/tenant_eq/site_eq/{device}/telem");
    let ack = |device: &str| format!("traksense/tenant_eq/site_eq/{device}/ack");
    let messages: Vec<(String, String)> = vec![
        (telem("dev1"), r#"{"schema":"v1","ts":"2025-10-07T15:30:00.125Z","points":[{"name":"f","t":"float","v":25.5,"u":"°C"},{"name":"n","t":"num","v":-3},{"name":"i","t":"int","v":42},{"name":"b","t":"bool","v":true},{"name":"t","t":"text","v":"door open"},{"name":"e","t":"enum","v":"AUTO"},{"name":"j","t":"json","v":{"a":[1,2.5,null],"b":"x"}},{"name":"inferred","v":false},{"name":"late","v":1.5,"ts":"2025-10-07T15:29:00+02:00"}],"meta":{"fw":"1.0.0","src":"test","nested":{"k":[1]}},"tenant":"someone_else"}"#.into()),
        (telem("parsec1"), r#"{"schema":"parsec_v1","ts":"2025-10-07T15:30:00Z","di1":1,"di2":0,"rssi":-67,"fw":"2.1.3"}"#.into()),
        (telem("parsec2"), r#"{"ts":"2025-10-07T15:31:00+01:00","di1":0,"di2":1}"#.into()),
        (ack("dev1"), r#"{"schema":"v1","cmd_id":"01HQZC5K3M8YBQWER7TXZ9V2P3","ok":true,"ts_exec":"2025-10-07T15:30:00Z","err":null}"#.into()),
        (ack("dev2"), r#"{"cmd_id":"c-2","ok":false,"err":"busy"}"#.into()),
        (telem("dev1"), r#"{"schema":"v1","ts":"2025-10-07T15:30:00","points":[{"name":"a","v":1}]}"#.into()),
        (telem("dev1"), r#"{"schema":"v1","ts":"2025-10-07T15:30:00Z","points":[{"name":"a","t":"int","v":"1"}]}"#.into()),
        (telem("dev1"), r#"{"schema":"v1","schema":"v1","ts":"2025-10-07T15:30:00Z","points":[]}"#.into()),
        (telem("dev1"), r#"{"schema":"v7","ts":"2025-10-07T15:30:00Z"}"#.into()),
        ("traksense/tenant_eq/site_eq/dev1/cmd".into(), r#"{"schema":"v1"}"#.into()),
        ("traksense/tenant_eq/dev1/telem".into(), r#"{"schema":"v1"}"#.into()),
        (telem("dev1"), format!(r#"{{"schema":"v1","pad":"{}"}}"#, "x".repeat(262_144))),
    ];

    let mut dry_measures = Vec::new();
    let mut dry_acks = Vec::new();
    let mut dry_dead = Vec::new();
    for (topic, payload) in &messages {
        let out = dry_run(topic, payload);
        match (out["outcome"].as_str(), out["sink"].as_str()) {
            (Some("stored"), Some("ts_measure")) => {
                dry_measures.extend(out["rows"].as_array().expect("rows").iter().cloned())
            }
            (Some("stored"), Some("cmd_ack")) => {
                dry_acks.extend(out["rows"].as_array().expect("rows").iter().cloned())
            }
            (Some("rejected"), _) => dry_dead.push(serde_json::json!({
                "topic": topic, "reason": out["reason"], "detail": out["detail"],
            })),
            other => panic!("unexpected dry run {other:?}: {out}"),
        }
    }
    assert_eq!(
        (dry_measures.len(), dry_acks.len(), dry_dead.len()),
        (14, 2, 7)
    );

    let p = TestPipeline::spawn("tools_dry_equals_live").await;
    for (topic, payload) in &messages {
        p.publish(topic, payload.as_bytes().to_vec()).await;
    }
    p.wait_count("select count(*) from ts_measure", 14).await;
    p.wait_count("select count(*) from cmd_ack", 2).await;
    p.wait_count("select count(*) from ingest_errors", 7).await;

    let live_measures: Vec<(Value,)> =
        p.db.fetch_all("select to_jsonb(m) - 'ingested_at' - 'qual' from ts_measure m")
            .await;
    let live_acks: Vec<(Value,)> =
        p.db.fetch_all("select to_jsonb(a) - 'created_at' - 'updated_at' from cmd_ack a")
            .await;
    let live_dead: Vec<(Value,)> =
        p.db.fetch_all("select jsonb_build_object('topic', topic, 'reason', reason, 'detail', detail) from ingest_errors")
            .await;
    let unwrap = |rows: Vec<(Value,)>| rows.into_iter().map(|(v,)| v).collect::<Vec<_>>();

    let measure_key = ["device_id", "point_id", "ts"];
    assert_same_rows(
        "ts_measure",
        &sorted(dry_measures, &measure_key),
        &sorted(unwrap(live_measures), &measure_key),
    );
    assert_same_rows(
        "cmd_ack",
        &sorted(dry_acks, &["device_id", "cmd_id"]),
        &sorted(unwrap(live_acks), &["device_id", "cmd_id"]),
    );
    assert_same_rows(
        "ingest_errors",
        &sorted(dry_dead, &["reason", "topic", "detail"]),
        &sorted(unwrap(live_dead), &["reason", "topic", "detail"]),
    );
    p.stop().await;
}
