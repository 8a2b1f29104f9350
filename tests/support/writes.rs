//! Calling a sink's write path directly, without a broker: envelopes as the
//! stages would hand them over, a `Writer` for each sink kind, and the pool
//! the runner would use on a migrated test database.
//!
//! Why: some guarantees live wholly inside `Writer` (row-level security,
//! storing a redelivered row once), and a test of them should not depend on
//! MQTT timing.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use traksense_ingest::delivery::DeliveryToken;
use traksense_ingest::envelope::{Body, Captures, Envelope, MeasureRow, PointValue};
use traksense_ingest::graph::plan::{BatchPlan, DatabasePlan, SinkPlan};
use traksense_ingest::secret::Secret;
use traksense_ingest::sink::postgres::kind::SinkKind;
use traksense_ingest::sink::postgres::setup::prepare;
use traksense_ingest::sink::postgres::table::TableName;
use traksense_ingest::sink::postgres::writer::Writer;

use super::TestDb;

/// The role the runner writes as (`migrations/`).
pub const WRITER_ROLE: &str = "ingest_writer";

/// Migrates `db` as the runner does and returns the runner's kind of pool.
pub async fn migrated_pool(db: &TestDb) -> sqlx::PgPool {
    prepare(&DatabasePlan {
        url: Secret::new(db.url()),
        pool_max: 2,
        role: WRITER_ROLE.into(),
        create_if_missing: false,
        migrate: true,
        dlq_retention: None,
    })
    .await
    .expect("migrated")
}

/// A writer for the default table of `kind`.
pub fn writer(kind: SinkKind, pool: sqlx::PgPool) -> Writer {
    let plan = SinkPlan {
        name: kind.name().into(),
        kind,
        table: TableName::from_str(kind.default_table()).unwrap(),
        batch: BatchPlan {
            max_rows: 10,
            max_wait: Duration::from_millis(10),
            parallel: 1,
        },
        queue: 10,
    };
    Writer::new(&plan, pool, WRITER_ROLE)
}

/// An envelope from `traksense/{tenant}/site/dev1/telem` carrying `body`,
/// with a token nobody waits on.
pub fn envelope(tenant: &str, body: Body) -> Envelope {
    Envelope {
        topic: Arc::from(format!("traksense/{tenant}/site/dev1/telem")),
        captures: Captures::new(vec![
            (Arc::from("tenant"), tenant.to_string()),
            (Arc::from("site"), "site".to_string()),
            (Arc::from("device"), "dev1".to_string()),
        ]),
        payload: Bytes::from_static(b"{}"),
        received_at: Utc::now(),
        body,
        token: DeliveryToken::detached(),
    }
}

/// A numeric reading of `point` at `second` seconds after 2025-10-07 15:30 UTC.
pub fn reading(point: &str, second: i64, value: f64) -> MeasureRow {
    let base: DateTime<Utc> = Utc.with_ymd_and_hms(2025, 10, 7, 15, 30, 0).unwrap();
    MeasureRow {
        point: point.into(),
        ts: base + chrono::Duration::seconds(second),
        value: PointValue::Num(value),
        unit: None,
        meta: None,
    }
}

/// One message of `tenant` with one reading.
pub fn measure(tenant: &str) -> Envelope {
    envelope(tenant, Body::Measures(vec![reading("temp", 0, 1.0)]))
}
