//! The `ack_upsert` sink: `cmd_ack` rows upserted on (tenant, device,
//! cmd_id), so an ACK published three times leaves one row whose
//! `updated_at` moves while `created_at` stays.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::envelope::{Body, Envelope};

use super::table::TableName;

/// The statement for `table`.
pub fn sql(table: &TableName) -> String {
    format!(
        "INSERT INTO {table} (tenant_id, device_id, cmd_id, ok, ts_exec, err, payload) \
         SELECT t, d, c, ok, te, e, p::jsonb \
         FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[], $5::timestamptz[], \
           $6::text[], $7::text[]) AS r(t, d, c, ok, te, e, p) \
         ON CONFLICT (tenant_id, device_id, cmd_id) DO UPDATE SET \
           ok = EXCLUDED.ok, ts_exec = EXCLUDED.ts_exec, err = EXCLUDED.err, \
           payload = EXCLUDED.payload, updated_at = now()"
    )
}

/// Upserts the ACKs of `envelopes`. A key repeated within the batch keeps
/// its last ACK: PostgreSQL refuses to update one row twice in a statement.
pub async fn upsert(
    conn: &mut PgConnection,
    sql: &str,
    envelopes: &[Envelope],
) -> Result<u64, sqlx::Error> {
    let mut last: HashMap<(&str, &str, &str), usize> = HashMap::new();
    let mut acks = Vec::with_capacity(envelopes.len());
    for envelope in envelopes {
        let Body::Ack(ack) = &envelope.body else {
            continue;
        };
        let tenant = envelope.tenant().unwrap_or_default();
        let device = envelope.captures.get("device").unwrap_or_default();
        let key = (tenant, device, ack.cmd_id.as_str());
        match last.get(&key) {
            Some(&i) => acks[i] = (tenant, device, ack),
            None => {
                last.insert(key, acks.len());
                acks.push((tenant, device, ack));
            }
        }
    }
    let ts_exec: Vec<Option<DateTime<Utc>>> = acks.iter().map(|(_, _, a)| a.ts_exec).collect();
    sqlx::query(sql)
        .bind(acks.iter().map(|(t, _, _)| *t).collect::<Vec<_>>())
        .bind(acks.iter().map(|(_, d, _)| *d).collect::<Vec<_>>())
        .bind(
            acks.iter()
                .map(|(_, _, a)| a.cmd_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(acks.iter().map(|(_, _, a)| a.ok).collect::<Vec<_>>())
        .bind(ts_exec)
        .bind(
            acks.iter()
                .map(|(_, _, a)| a.err.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(
            acks.iter()
                .map(|(_, _, a)| a.payload.as_str())
                .collect::<Vec<_>>(),
        )
        .execute(conn)
        .await?;
    Ok(acks.len() as u64)
}
