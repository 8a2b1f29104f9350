//! The promise that a dry run shows what the live runner stores (issue 5):
//! the same payloads through `runner dry-run` and through the live pipeline
//! (MQTT broker, PostgreSQL) give identical rows and dead letters.

mod support;

use serde_json::Value;
use support::cli::{json_lines, runner, SHIPPED};
use support::pipeline::TestPipeline;
use traksense_ingest::tools::verdict::values_match;

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
