//! The `runner` binary as an operator runs it: `runner pipelines/traksense.yaml`
//! with the environment knobs, stopped with SIGTERM; and a broken pipeline
//! file refused before anything connects.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::pipeline::SHIPPED;
use support::{eventually, Publisher, TestBroker, TestDb};

const RUNNER: &str = env!("CARGO_BIN_EXE_runner");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_the_shipped_pipeline_and_stops_cleanly_on_sigterm() {
    let broker = TestBroker::start();
    let db = TestDb::create("runner_binary").await;
    // The runner creates its database itself: point it at a fresh name. The
    // URL carries a password (ignored by trust auth) that must never be logged.
    let url = format!("{}_created", db.url()).replacen("postgres@", "postgres:s3cr3t-db@", 1);
    assert!(url.contains("s3cr3t-db"), "{url}");
    let child = Command::new(RUNNER)
        .arg(SHIPPED)
        .env("MQTT_URL", broker.url())
        .env("DATABASE_URL", &url)
        .env("MQTT_CLIENT_ID", "runner-binary-test")
        .env("METRICS_PORT", "0")
        .env("RUST_LOG", "info")
        .env("LOG_FORMAT", "json")
        .env("MQTT_USERNAME", "ingest")
        .env("MQTT_PASSWORD", "s3cr3t-mqtt")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runner starts");
    let created = format!("{}_created", db.name());
    let admin = db.pool().clone();
    let count = |sql: String| {
        let admin = admin.clone();
        let created = created.clone();
        async move {
            let opts = admin.connect_options().as_ref().clone().database(&created);
            let Ok(pool) = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect_with(opts)
                .await
            else {
                return -1;
            };
            let n: i64 = sqlx::query_scalar(&sql)
                .fetch_one(&pool)
                .await
                .unwrap_or(-1);
            pool.close().await;
            n
        }
    };
    // The runner is ready once its tables exist and its session holds a
    // subscription; a persistent publisher session makes the wait exact:
    // publish until the first row appears.
    let publisher = Publisher::connect(&broker.url(), "runner-binary-device").await;
    let topic = "traksense/t1/s1/d1/telem";
    eventually("the runner to store a first message", Duration::from_secs(60), || async {
        publisher
            .publish(topic, r#"{"schema":"v1","ts":"2025-10-07T15:00:00Z","points":[{"name":"probe","v":0}]}"#)
            .await;
        let n = count("select count(*) from ts_measure".into()).await;
        if n >= 1 { Ok(n) } else { Err(n) }
    })
    .await;
    for i in 1..=20 {
        let payload = format!(
            r#"{{"schema":"v1","ts":"2025-10-07T15:{i:02}:00Z","points":[{{"name":"temp","v":{i}}}]}}"#
        );
        publisher.publish(topic, payload).await;
    }
    eventually("21 rows", Duration::from_secs(15), || async {
        let n = count("select count(*) from ts_measure".into()).await;
        if n == 21 {
            Ok(n)
        } else {
            Err(n)
        }
    })
    .await;

    let pid = child.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .expect("runner exits");
    let log = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit status {:?}\n{log}",
        output.status
    );
    assert!(log.contains("shutdown requested"), "{log}");
    assert!(log.contains("stopped"), "{log}");
    assert!(!log.contains("BUG"), "{log}");
    assert!(!log.contains("s3cr3t"), "a secret reached the log:\n{log}");
    for line in log.lines().filter(|l| !l.is_empty()) {
        let parsed: Result<serde_json::Value, _> = serde_json::from_str(line);
        assert!(
            parsed.is_ok(),
            "LOG_FORMAT=json gives one JSON object per line: {line}"
        );
    }
    assert!(
        log.contains(r#""stage":"by_kind""#),
        "a start line per stage:\n{log}"
    );
    assert!(log.contains("sink totals"), "totals at stop:\n{log}");

    // Leave nothing behind.
    let drop = format!(
        "drop database if exists \"{}\" with (force)",
        db.name().to_string() + "_created"
    );
    sqlx::query(&drop).execute(db.pool()).await.ok();
}

#[test]
fn a_broken_pipeline_is_refused_with_every_error_located() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    let text = std::fs::read_to_string(SHIPPED)
        .unwrap()
        .replace("next: ts_measure", "next: ts_mesure")
        .replace("type: dead_letter", "type: dead_leter");
    std::fs::write(&broken, text).unwrap();
    let output = Command::new(RUNNER)
        .arg(&broken)
        .output()
        .expect("runner runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("broken.yaml:"), "{stderr}");
    assert!(
        stderr.contains("stages.telemetry.next: no stage or sink named \"ts_mesure\""),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean \"ts_measure\"?"), "{stderr}");
    assert!(stderr.contains("sinks.dead_letter.type"), "{stderr}");
    assert!(stderr.contains("did you mean \"dead_letter\"?"), "{stderr}");
}
