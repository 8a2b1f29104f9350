//! The compiler's contract: every kind of mistake is reported, all at once,
//! each at its file:line:column with its field path and a hint.

use std::path::PathBuf;

use super::compile_with_env;
use crate::config::error::{ConfigError, ConfigErrors};
use crate::graph::plan::Plan;

const SCHEMAS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas");

/// A valid pipeline; each test breaks one thing.
fn base() -> String {
    format!(
        r#"source:
  mqtt:
    url: mqtt://127.0.0.1:1883
    client_id: test
    subscriptions:
      - {{ filter: "traksense/+/+/+/+", qos: 1 }}
  topic: "traksense/{{tenant}}/{{site}}/{{device}}/{{kind}}"
  next: by_kind
stages:
  by_kind:
    type: router
    on: kind
    routes: {{ telem: telemetry, ack: ack }}
  telemetry:
    type: normalize
    formats:
      v1: {{ format: v1, schema: {SCHEMAS}/telem.v1.json }}
    next: ts_measure
  ack:
    type: normalize
    formats:
      v1: {{ format: ack_v1, schema: {SCHEMAS}/ack.v1.json }}
    next: cmd_ack
sinks:
  ts_measure: {{ type: timeseries }}
  cmd_ack: {{ type: ack_upsert }}
  dead_letter: {{ type: dead_letter }}
database:
  url: postgres://postgres@127.0.0.1/x
"#
    )
}

fn compile_yaml(yaml: &str) -> Result<Plan, ConfigErrors> {
    compile_env(yaml, &|_| None)
}

fn compile_env(yaml: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Plan, ConfigErrors> {
    let dir = tempfile::tempdir().expect("tempdir");
    let file: PathBuf = dir.path().join("pipeline.yaml");
    std::fs::write(&file, yaml).expect("write pipeline");
    compile_with_env(&file, env)
}

fn errors(yaml: &str) -> Vec<ConfigError> {
    match compile_yaml(yaml) {
        Ok(_) => panic!("expected errors for:\n{yaml}"),
        Err(ConfigErrors(errors)) => errors,
    }
}

/// The single error at `path`, asserting its line and that its message
/// (and hint, if given) contain the expected words.
#[track_caller]
fn assert_error(
    errors: &[ConfigError],
    path: &str,
    line: usize,
    message: &str,
    hint: Option<&str>,
) {
    let Some(e) = errors.iter().find(|e| e.path == path) else {
        panic!(
            "no error at {path}; got:\n{}",
            ConfigErrors(errors.to_vec())
        );
    };
    assert_eq!(e.location.map(|l| l.line), Some(line), "line of {e}");
    assert!(e.message.contains(message), "{e}");
    if let Some(hint) = hint {
        assert!(e.hint.as_deref().unwrap_or("").contains(hint), "{e}");
    }
}

#[test]
fn the_base_pipeline_and_the_shipped_one_compile_cleanly() {
    let plan = compile_yaml(&base()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plan.stages.len(), 3);
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines/traksense.yaml");
    let plan = compile_with_env(shipped.as_ref(), &|_| None).unwrap_or_else(|e| panic!("{e}"));
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    assert_eq!(plan.source.mqtt.receive_maximum, 50000);
    assert_eq!(plan.sinks[plan.dead_letter].name, "dead_letter");
}

#[test]
fn yaml_syntax_errors_are_located() {
    let e = errors("source:\n  mqtt: [unclosed\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].message.contains("not valid YAML"), "{}", e[0]);
    assert!(e[0].location.is_some(), "{}", e[0]);
}

#[test]
fn unknown_fields_point_at_the_key_with_a_suggestion() {
    let yaml = base().replace("    on: kind\n", "    on: kind\n    rutes: {}\n");
    assert_error(
        &errors(&yaml),
        "stages.by_kind.rutes",
        13,
        "unknown field `rutes`",
        Some("routes"),
    );
    let yaml = base().replace("database:", "databse:\n  url: x\ndatabase:");
    assert_error(
        &errors(&yaml),
        "databse",
        28,
        "unknown top-level key",
        Some("database"),
    );
}

#[test]
fn missing_fields_point_at_their_parent() {
    let yaml = base().replace("    next: ts_measure\n", "");
    assert_error(
        &errors(&yaml),
        "stages.telemetry.next",
        14,
        "missing field `next`",
        Some("add `next:`"),
    );
}

#[test]
fn dangling_names_suggest_the_closest_one() {
    let yaml = base().replace("next: ts_measure", "next: ts_mesure");
    assert_error(
        &errors(&yaml),
        "stages.telemetry.next",
        18,
        "no stage or sink named \"ts_mesure\"",
        Some("did you mean \"ts_measure\"?"),
    );
    let yaml = base().replace("routes: { telem: telemetry,", "routes: { telem: telemetri,");
    assert_error(
        &errors(&yaml),
        "stages.by_kind.routes.telem",
        13,
        "telemetri",
        Some("telemetry"),
    );
}

#[test]
fn cycles_are_refused() {
    let yaml = base().replace("next: ts_measure", "next: by_kind");
    let e = errors(&yaml);
    let cycle = e
        .iter()
        .find(|e| e.message.contains("cycle"))
        .expect("cycle error");
    assert!(
        cycle
            .message
            .contains("stages.by_kind → stages.telemetry → stages.by_kind"),
        "{cycle}"
    );
    assert!(cycle.location.is_some());
}

#[test]
fn a_sink_fed_the_wrong_rows_is_refused() {
    let yaml = base().replace("next: cmd_ack", "next: ts_measure");
    assert_error(
        &errors(&yaml),
        "stages.ack.next",
        23,
        "acknowledgement rows",
        Some("normalize"),
    );
    // Raw payloads straight into a sink.
    let yaml = base().replace(
        "routes: { telem: telemetry,",
        "routes: { telem: ts_measure,",
    );
    assert_error(
        &errors(&yaml),
        "stages.by_kind.routes.telem",
        13,
        "raw payloads",
        None,
    );
}

#[test]
fn schema_files_must_exist_and_be_schemas() {
    let yaml = base().replace("telem.v1.json", "nope.json");
    assert_error(
        &errors(&yaml),
        "stages.telemetry.formats.v1.schema",
        17,
        "nope.json",
        Some("relative"),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{ not json").expect("write");
    let yaml = base().replace(
        &format!("{SCHEMAS}/telem.v1.json"),
        &bad.display().to_string(),
    );
    assert_error(
        &errors(&yaml),
        "stages.telemetry.formats.v1.schema",
        17,
        "bad.json",
        None,
    );
}

#[test]
fn unknown_formats_and_kinds_list_the_known_ones() {
    let yaml = base().replace("format: v1,", "format: v2,");
    assert_error(
        &errors(&yaml),
        "stages.telemetry.formats.v1.format",
        17,
        "unknown format \"v2\"",
        Some("v1"),
    );
    let yaml = base().replace("type: timeseries", "type: timeseris");
    assert_error(
        &errors(&yaml),
        "sinks.ts_measure.type",
        25,
        "unknown sink type",
        Some("timeseries"),
    );
    let yaml = base().replace("type: router", "type: routr");
    assert_error(
        &errors(&yaml),
        "stages.by_kind.type",
        11,
        "unknown variant",
        Some("router"),
    );
}

#[test]
fn dead_letter_sink_is_required_and_cannot_be_routed_to() {
    let yaml = base().replace("  dead_letter: { type: dead_letter }\n", "");
    assert_error(
        &errors(&yaml),
        "sinks",
        24,
        "no dead_letter sink",
        Some("type: dead_letter"),
    );
    let yaml = base().replace("next: cmd_ack", "next: dead_letter");
    assert_error(&errors(&yaml), "stages.ack.next", 23, "dead_letter", None);
}

#[test]
fn unset_environment_variables_are_located() {
    let yaml = base().replace("client_id: test", "client_id: ${CLIENT}");
    assert_error(
        &errors(&yaml),
        "source.mqtt.client_id",
        4,
        "CLIENT is not set",
        Some("${CLIENT:-value}"),
    );
    let yaml = base().replace(
        "client_id: test",
        "client_id: ${CLIENT:-x}\n    keep_alive_secs: ${KA}",
    );
    let plan = compile_env(&yaml, &|k| (k == "KA").then(|| "7".to_string())).expect("compiles");
    assert_eq!(plan.source.mqtt.client_id, "x");
    assert_eq!(plan.source.mqtt.keep_alive.as_secs(), 7);
}

#[test]
fn bad_values_are_located() {
    let yaml = base().replace("qos: 1", "qos: 3");
    assert_error(
        &errors(&yaml),
        "source.mqtt.subscriptions[0].qos",
        6,
        "QoS 3",
        None,
    );
    let yaml = base().replace("traksense/+/+/+/+", "traksense/#/x");
    assert_error(
        &errors(&yaml),
        "source.mqtt.subscriptions[0].filter",
        6,
        "`#`",
        None,
    );
    let yaml = base().replace("url: mqtt://127.0.0.1:1883", "url: http://x");
    assert_error(
        &errors(&yaml),
        "source.mqtt.url",
        3,
        "scheme",
        Some("mqtt://"),
    );
    let yaml = base().replace(
        "type: timeseries }",
        "type: timeseries, table: \"x; drop\" }",
    );
    assert_error(
        &errors(&yaml),
        "sinks.ts_measure.table",
        25,
        "identifier",
        None,
    );
    let yaml = base().replace("on: kind", "on: knd");
    assert_error(
        &errors(&yaml),
        "stages.by_kind.on",
        12,
        "no {knd} capture",
        Some("kind"),
    );
    let yaml = base().replace(
        "  next: by_kind",
        "  max_payload_bytes: 99999999\n  next: by_kind",
    );
    assert_error(
        &errors(&yaml),
        "source.mqtt.max_packet_bytes",
        2,
        "not above",
        Some("dead-letter"),
    );
    let yaml = base().replace(
        "client_id: test",
        "client_id: test\n    keep_alive_secs: soon",
    );
    assert_error(
        &errors(&yaml),
        "source.mqtt.keep_alive_secs",
        5,
        "invalid value",
        None,
    );
}

#[test]
fn every_error_is_reported_at_once_in_file_order() {
    let yaml = base()
        .replace("qos: 1", "qos: 9")
        .replace("next: ts_measure", "next: nowhere")
        .replace("type: timeseries", "type: tsdb");
    let e = errors(&yaml);
    assert!(e.len() >= 3, "{}", ConfigErrors(e.clone()));
    let lines: Vec<usize> = e
        .iter()
        .filter_map(|e| e.location.map(|l| l.line))
        .collect();
    let mut sorted = lines.clone();
    sorted.sort_unstable();
    assert_eq!(lines, sorted);
    let text = ConfigErrors(e).to_string();
    assert!(text.contains("pipeline.yaml:6:"), "{text}");
    assert!(text.ends_with("3 errors"), "{text}");
}

#[test]
fn unreachable_stages_are_warnings_not_errors() {
    let yaml = base().replace(
        "sinks:",
        &format!(
            "  orphan:\n    type: json_schema\n    schema: {SCHEMAS}/ack.v1.json\n    next: ack\nsinks:"
        ),
    );
    let plan = compile_yaml(&yaml).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plan.warnings.len(), 1);
    assert_eq!(plan.warnings[0].path, "stages.orphan");
    assert_eq!(plan.warnings[0].location.map(|l| l.line), Some(24));
}

#[test]
fn more_write_slots_than_pooled_connections_is_a_warning() {
    let yaml = base().replace(
        "  url: postgres://postgres@127.0.0.1/x\n",
        "  url: postgres://postgres@127.0.0.1/x\n  pool_max: 4\n",
    );
    let plan = compile_yaml(&yaml).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);
    assert_eq!(plan.warnings[0].path, "database.pool_max");
    assert!(plan.warnings[0].message.contains("up to 6 batches"));
    assert_eq!(plan.warnings[0].location.map(|l| l.line), Some(30));
}
