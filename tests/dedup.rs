//! A row already in `ts_measure` is stored once more never: the sink inserts
//! plainly, and a batch that meets a stored row is written again with
//! `ON CONFLICT DO NOTHING` (`src/sink/postgres/dedup.rs`). These tests call
//! the sink's write path with batches a redelivery would produce.

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use traksense_ingest::envelope::{Body, Envelope};
use traksense_ingest::sink::postgres::kind::SinkKind;
use traksense_ingest::telemetry::SinkStats;

use support::writes::{envelope, migrated_pool, reading, writer};
use support::TestDb;

/// One message of tenant `t1` with one reading of `point` per second given.
fn message(point: &str, seconds: &[i64]) -> Envelope {
    let rows = seconds
        .iter()
        .map(|&s| reading(point, s, s as f64))
        .collect();
    envelope("t1", Body::Measures(rows))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_message_is_stored_once_beside_new_ones() {
    let db = TestDb::create("dedup_redelivered").await;
    let pool = migrated_pool(&db).await;
    let ts = writer(SinkKind::Timeseries, pool.clone());
    let stats = Arc::new(SinkStats::default());

    ts.flush(vec![message("temp", &[0, 1, 2])], None, &stats)
        .await;
    assert_eq!(stats.dedup_fallbacks.load(Ordering::Relaxed), 0);
    assert_eq!(db.count("select count(*) from ts_measure").await, 3);

    // The broker redelivers the first message, in a batch with a new one.
    ts.flush(
        vec![message("temp", &[0, 1, 2]), message("temp", &[3])],
        None,
        &stats,
    )
    .await;
    assert_eq!(
        stats.dedup_fallbacks.load(Ordering::Relaxed),
        1,
        "the plain insert met stored rows once, then the batch went through ON CONFLICT"
    );
    assert_eq!(db.count("select count(*) from ts_measure").await, 4);
    assert_eq!(
        db.count("select count(distinct ts) from ts_measure").await,
        4
    );
    // Both batches committed every message (none went to db_rejected).
    assert_eq!(stats.messages.load(Ordering::Relaxed), 3);
    assert_eq!(stats.db_rejected.load(Ordering::Relaxed), 0);

    // Within the hold after a conflict, writes dedup from the start: a
    // further redelivery costs no failed statement.
    ts.flush(vec![message("temp", &[3])], None, &stats).await;
    assert_eq!(stats.dedup_fallbacks.load(Ordering::Relaxed), 1);
    assert_eq!(db.count("select count(*) from ts_measure").await, 4);
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_message_twice_in_one_batch_is_stored_once() {
    let db = TestDb::create("dedup_same_batch").await;
    let pool = migrated_pool(&db).await;
    let ts = writer(SinkKind::Timeseries, pool.clone());
    let stats = Arc::new(SinkStats::default());

    ts.flush(
        vec![
            message("temp", &[7]),
            message("temp", &[7]),
            message("rh", &[7]),
        ],
        None,
        &stats,
    )
    .await;
    assert_eq!(stats.dedup_fallbacks.load(Ordering::Relaxed), 1);
    assert_eq!(stats.messages.load(Ordering::Relaxed), 3);
    assert_eq!(db.count("select count(*) from ts_measure").await, 2);
    pool.close().await;
}
