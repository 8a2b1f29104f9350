//! The sink's group commit with batch limits smaller than a message: a
//! batch counts rows, messages bring several, so a batch overshoots
//! `max_rows` whenever a write is in flight. Everything must still be
//! written once and acknowledged (this once killed the sink task in debug
//! builds: an integer underflow in its receive limit).

mod support;

use support::pipeline::TestPipeline;

const TELEM: &str = "traksense/tenant_b/site_b/dev_b/telem";

/// A v1 message of `points` points whose values start at `first`.
fn message(first: usize, points: usize) -> String {
    let points: Vec<String> = (0..points)
        .map(|j| format!(r#"{{"name":"p{j}","v":{}}}"#, first + j))
        .collect();
    format!(
        r#"{{"schema":"v1","ts":"2026-12-04T07:00:00.{:03}Z","points":[{}]}}"#,
        first / points.len(),
        points.join(",")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_overshooting_max_rows_are_written_once() {
    let mut p = TestPipeline::spawn_with(
        "batching_overshoot",
        &[("INGEST_BATCH_SIZE", "5"), ("INGEST_BATCH_PARALLEL", "1")],
    )
    .await;
    let (messages, points) = (60, 10);
    for i in 0..messages {
        p.publish(TELEM, message(i * points, points)).await;
    }
    let total = (messages * points) as i64;
    p.wait_count("select count(*) from ts_measure", total).await;
    assert_eq!(
        p.db.count("select count(distinct v_num) from ts_measure")
            .await,
        total
    );
    let summary = p.stop_runner().await;
    assert_eq!(summary.dropped, 0, "{summary:?}");
    assert_eq!(summary.acknowledged, messages as u64, "{summary:?}");
}
