//! Issue 4: what operators see. After a known load, `/metrics` holds exact
//! counter values under CONTRACT.md's names and is valid Prometheus text;
//! `/readyz` follows the broker going away and coming back.

mod support;

use std::time::Duration;

use support::pipeline::TestPipeline;
use support::{eventually, prom};

/// GETs `path` from the runner's metrics port: `(status code, body)`.
async fn get(p: &TestPipeline, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = p.telemetry.addr().expect("metrics address bound");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, body.to_string())
}

/// Waits until `/readyz` answers `code`; returns its body.
async fn wait_readyz(p: &TestPipeline, code: u16, what: &str, secs: u64) -> String {
    eventually(what, Duration::from_secs(secs), || async {
        let (got, body) = get(p, "/readyz").await;
        if got == code {
            Ok(body)
        } else {
            Err((got, body))
        }
    })
    .await
}

async fn scrape(p: &TestPipeline) -> prom::Exposition {
    let (status, body) = get(p, "/metrics").await;
    assert_eq!(status, 200);
    assert!(!body.contains("otel_scope"), "no scope labels:\n{body}");
    assert!(!body.contains("target_info"), "no target_info:\n{body}");
    prom::parse(&body).unwrap_or_else(|e| panic!("invalid exposition: {e}\n{body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_after_a_known_load_are_exact() {
    let p = TestPipeline::spawn("metrics_counters").await;
    let telem = "traksense/t1/site/dev1/telem";
    let ack = "traksense/t1/site/dev1/ack";
    const GOOD: u64 = 5;
    for i in 0..GOOD {
        let payload = format!(
            r#"{{"schema":"v1","ts":"2025-10-07T15:00:0{i}Z","points":[{{"name":"a","v":{i}}},{{"name":"b","v":true}}]}}"#
        );
        p.publish(telem, payload).await;
    }
    p.publish(telem, "{not json").await;
    p.publish(telem, "also not json").await;
    p.publish("traksense/t1/site", "{}").await;
    let ack_payload = r#"{"schema":"v1","cmd_id":"c-1","ok":true}"#;
    for _ in 0..3 {
        p.publish(ack, ack_payload).await;
    }
    let total = GOOD + 3 + 3;
    let m = eventually(
        "every message acknowledged",
        Duration::from_secs(15),
        || async {
            let m = scrape(&p).await;
            if m.get("ingest_acknowledged_total") == Some(total as f64) {
                Ok(m)
            } else {
                Err(m.get("ingest_acknowledged_total"))
            }
        },
    )
    .await;

    let expect = [
        ("ingest_messages_total{type=\"telem\"}", GOOD as f64 + 2.0),
        ("ingest_messages_total{type=\"ack\"}", 3.0),
        ("ingest_messages_total{type=\"other\"}", 1.0),
        ("ingest_points_total", 2.0 * GOOD as f64),
        ("ingest_errors_total{reason=\"parse_error\"}", 2.0),
        ("ingest_errors_total{reason=\"bad_topic\"}", 1.0),
        ("ingest_errors_total{reason=\"schema_error\"}", 0.0),
        ("ingest_errors_total{reason=\"db_rejected\"}", 0.0),
        (
            "ingest_stage_received_total{stage=\"by_kind\"}",
            total as f64 - 1.0,
        ),
        ("ingest_stage_rejected_total{stage=\"telemetry\"}", 2.0),
        ("ingest_sink_messages_total{sink=\"cmd_ack\"}", 3.0),
        ("ingest_sink_messages_total{sink=\"dead_letter\"}", 3.0),
        (
            "ingest_sink_rows_total{sink=\"ts_measure\"}",
            2.0 * GOOD as f64,
        ),
        ("ingest_db_retries_total{sink=\"ts_measure\"}", 0.0),
        ("ingest_mqtt_connected", 1.0),
        ("ingest_mqtt_reconnects_total", 0.0),
        ("ingest_queue_size{stage=\"by_kind\"}", 0.0),
        ("ingest_queue_size{stage=\"ts_measure\"}", 0.0),
        ("ingest_latency_seconds_count", GOOD as f64),
        ("ingest_pipeline_latency_seconds_count", total as f64),
    ];
    for (key, value) in expect {
        assert_eq!(m.value(key), value, "{key}");
    }
    // Histograms carry CONTRACT.md's buckets; the device timestamps are
    // old, so every telemetry latency is above the last bucket.
    assert_eq!(m.value("ingest_latency_seconds_bucket{le=\"1\"}"), 0.0);
    assert_eq!(
        m.value("ingest_latency_seconds_bucket{le=\"+Inf\"}"),
        GOOD as f64
    );
    let batches = m.value("ingest_batch_size_count{sink=\"ts_measure\"}");
    assert!(batches >= 1.0);
    assert_eq!(
        m.value("ingest_batch_size_bucket{le=\"500\",sink=\"ts_measure\"}"),
        batches
    );
    assert_eq!(
        m.value("ingest_batch_size_sum{sink=\"ts_measure\"}"),
        2.0 * GOOD as f64
    );
    for (family, kind) in [
        ("ingest_messages_total", "counter"),
        ("ingest_points_total", "counter"),
        ("ingest_errors_total", "counter"),
        ("ingest_batch_size", "histogram"),
        ("ingest_latency_seconds", "histogram"),
        ("ingest_queue_size", "gauge"),
    ] {
        assert_eq!(
            m.types.get(family).map(String::as_str),
            Some(kind),
            "{family}"
        );
    }
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_broker() {
    let mut p = TestPipeline::spawn("metrics_readyz").await;
    assert_eq!(get(&p, "/healthz").await.0, 200);
    wait_readyz(&p, 200, "ready", 10).await;
    p.broker.stop();
    let body = wait_readyz(&p, 503, "/readyz to turn 503 with the broker gone", 15).await;
    assert!(body.contains("broker: down"), "{body}");
    assert_eq!(get(&p, "/healthz").await.0, 200, "alive while not ready");
    p.broker.restart();
    wait_readyz(&p, 200, "/readyz to turn 200 again", 30).await;
    let m = scrape(&p).await;
    assert_eq!(m.value("ingest_mqtt_reconnects_total"), 1.0);
    // Still ingesting after the broker came back.
    p.publish(
        "traksense/t1/site/dev1/telem",
        r#"{"schema":"v1","ts":"2025-10-07T15:00:00Z","points":[{"name":"a","v":1}]}"#,
    )
    .await;
    p.wait_count("select count(*) from ts_measure", 1).await;
    p.stop().await;
}
