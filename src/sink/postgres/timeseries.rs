//! The `timeseries` sink: `ts_measure` rows, one array-parameter
//! `INSERT … SELECT FROM unnest(…)` per tenant batch, never row by row.
//! The unique key (tenant, device, point, ts) makes a redelivered message
//! store once: plainly inserted rows fail on it, and `ON CONFLICT DO
//! NOTHING` skips them (which of the two statements runs: [`super::dedup`]).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::envelope::{Body, Envelope, PointValue};

use super::table::TableName;

/// The statement for `table`: with `ON CONFLICT DO NOTHING` when `dedup`,
/// a plain `INSERT` otherwise.
pub fn sql(table: &TableName, dedup: bool) -> String {
    let on_conflict = if dedup {
        " ON CONFLICT (tenant_id, device_id, point_id, ts) DO NOTHING"
    } else {
        ""
    };
    format!(
        "INSERT INTO {table} (tenant_id, site_id, device_id, point_id, ts, \
           v_num, v_bool, v_text, v_json, unit, meta) \
         SELECT t, s, d, p, ts, vn, vb, vt, vj::jsonb, u, m::jsonb \
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], \
           $6::float8[], $7::bool[], $8::text[], $9::text[], $10::text[], $11::text[]) \
           AS r(t, s, d, p, ts, vn, vb, vt, vj, u, m){on_conflict}"
    )
}

/// Inserts the rows of `envelopes` (bodies other than `Measures` are
/// skipped); returns the number of rows sent.
pub async fn insert(
    conn: &mut PgConnection,
    sql: &str,
    envelopes: &[Envelope],
) -> Result<u64, sqlx::Error> {
    let n: usize = envelopes.iter().map(rows_of).sum();
    let mut tenant = Vec::with_capacity(n);
    let mut site = Vec::with_capacity(n);
    let mut device = Vec::with_capacity(n);
    let mut point = Vec::with_capacity(n);
    let mut ts: Vec<DateTime<Utc>> = Vec::with_capacity(n);
    let mut v_num = Vec::with_capacity(n);
    let mut v_bool = Vec::with_capacity(n);
    let mut v_text = Vec::with_capacity(n);
    let mut v_json = Vec::with_capacity(n);
    let mut unit = Vec::with_capacity(n);
    let mut meta = Vec::with_capacity(n);
    for envelope in envelopes {
        let Body::Measures(rows) = &envelope.body else {
            continue;
        };
        let t = envelope.tenant().unwrap_or_default();
        let s = envelope.captures.get("site");
        let d = envelope.captures.get("device").unwrap_or_default();
        for row in rows {
            tenant.push(t);
            site.push(s);
            device.push(d);
            point.push(row.point.as_str());
            ts.push(row.ts);
            let (num, boolean, text, json) = match &row.value {
                PointValue::Num(v) => (Some(*v), None, None, None),
                PointValue::Bool(v) => (None, Some(*v), None, None),
                PointValue::Text(v) => (None, None, Some(v.as_str()), None),
                PointValue::Json(v) => (None, None, None, Some(v.as_str())),
            };
            v_num.push(num);
            v_bool.push(boolean);
            v_text.push(text);
            v_json.push(json);
            unit.push(row.unit.as_deref());
            meta.push(row.meta.as_deref());
        }
    }
    sqlx::query(sql)
        .bind(tenant)
        .bind(site)
        .bind(device)
        .bind(point)
        .bind(ts)
        .bind(v_num)
        .bind(v_bool)
        .bind(v_text)
        .bind(v_json)
        .bind(unit)
        .bind(meta)
        .execute(conn)
        .await?;
    Ok(n as u64)
}

/// Rows an envelope adds to a batch.
pub fn rows_of(envelope: &Envelope) -> usize {
    match &envelope.body {
        Body::Measures(rows) => rows.len(),
        _ => 1,
    }
}
