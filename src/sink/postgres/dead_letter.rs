//! The `dead_letter` sink: every rejected message, with its reason code, a
//! detail a person can act on, and the exact bytes received (`bytea`, never
//! re-encoded) — once: a message the broker redelivers has the same topic
//! and bytes, and `(topic, reason, md5(payload))` is unique. Also deletes
//! dead letters past their retention.

use std::time::Duration;

use sqlx::{PgConnection, PgPool};

use crate::envelope::{Body, Envelope};

use super::table::TableName;

/// The statement for `table`.
pub fn sql(table: &TableName) -> String {
    format!(
        "INSERT INTO {table} (tenant_id, topic, reason, detail, payload) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[]) \
         ON CONFLICT (topic, reason, payload_md5) DO NOTHING"
    )
}

/// Inserts the rejections among `envelopes`.
pub async fn insert(
    conn: &mut PgConnection,
    sql: &str,
    envelopes: &[Envelope],
) -> Result<u64, sqlx::Error> {
    let mut tenant = Vec::with_capacity(envelopes.len());
    let mut topic = Vec::with_capacity(envelopes.len());
    let mut reason = Vec::with_capacity(envelopes.len());
    let mut detail = Vec::with_capacity(envelopes.len());
    let mut payload = Vec::with_capacity(envelopes.len());
    for envelope in envelopes {
        let Body::Rejected(rejection) = &envelope.body else {
            continue;
        };
        tenant.push(envelope.tenant());
        topic.push(text_safe(&envelope.topic));
        reason.push(rejection.reason.as_str());
        detail.push(text_safe(&rejection.detail));
        payload.push(envelope.payload.as_ref());
    }
    let n = reason.len() as u64;
    sqlx::query(sql)
        .bind(tenant)
        .bind(topic)
        .bind(reason)
        .bind(detail)
        .bind(payload)
        .execute(conn)
        .await?;
    Ok(n)
}

/// PostgreSQL `text` cannot hold NUL; a detail quoting a device's string
/// might. The payload column keeps the exact bytes regardless.
fn text_safe(s: &str) -> String {
    s.replace('\0', "\u{FFFD}")
}

/// Deletes dead letters older than `retention`, now and then every hour,
/// until the pool closes. Runs as the connecting user (not the writer
/// role): retention spans all tenants.
pub async fn retain(pool: PgPool, table: TableName, retention: Duration) {
    let sql = format!("DELETE FROM {table} WHERE ts < now() - make_interval(secs => $1)");
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        if pool.is_closed() {
            return;
        }
        match sqlx::query(&sql)
            .bind(retention.as_secs_f64())
            .execute(&pool)
            .await
        {
            Ok(done) if done.rows_affected() > 0 => {
                tracing::info!(table = %table, deleted = done.rows_affected(), "dead-letter retention")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(table = %table, error = %e, "dead-letter retention failed"),
        }
    }
}
