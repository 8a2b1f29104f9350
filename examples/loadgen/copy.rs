//! The PostgreSQL ceiling: the rows the runner would write for this load
//! (same tenants, devices, points, timestamps, values, unit and `meta`),
//! streamed by `COPY ts_measure (…) FROM STDIN` (text format) on
//! `--connections` connections, one COPY (one transaction) each.
//!
//! The rows are generated before the clock starts; the time runs from the
//! start of the COPYs to the last commit, so it is the database's work plus
//! the loopback transfer. The server processes' CPU time is read from
//! `/proc` (same machine) around each COPY: `copy_pg_cpu_s`. Run as a superuser, COPY bypasses row-level
//! security (which the runner's `ingest_writer` role does not), and does no
//! `ON CONFLICT` check beyond the unique index itself.

use sqlx::{Connection, PgConnection};
use tokio::task::JoinHandle;
use tokio::time::{timeout_at, Instant};

use crate::report::{cpu_seconds, Report};
use crate::shape::{Clocks, Shape, COPY_COLUMNS};

/// Bytes handed to one `send` (sqlx splits them into CopyData messages).
const CHUNK: usize = 1 << 20;

/// COPYs the load's rows into `ts_measure` of `database_url` and records
/// rows/s.
pub async fn run(
    shape: &Shape,
    database_url: &str,
    deadline: Instant,
    report: &mut Report,
) -> Result<(), String> {
    let mut clocks = Clocks::new(shape.device_count());
    let mut data: Vec<String> = vec![String::new(); shape.connections as usize];
    for i in 0..shape.messages {
        let device = shape.device_of(i);
        let ts = clocks.stamp(device);
        shape.copy_rows(i, ts, &mut data[shape.owner(device) as usize]);
    }
    let bytes: usize = data.iter().map(String::len).sum();

    let mut connections = Vec::new();
    for _ in 0..shape.connections {
        let conn = PgConnection::connect(database_url)
            .await
            .map_err(|e| format!("cannot connect to the database: {e}"))?;
        connections.push(conn);
    }

    let sql = format!("COPY ts_measure ({COPY_COLUMNS}) FROM STDIN");
    let start = Instant::now();
    let tasks: Vec<JoinHandle<Result<(u64, f64), String>>> = connections
        .into_iter()
        .zip(data)
        .map(|(mut conn, rows)| {
            let sql = sql.clone();
            tokio::spawn(async move {
                let copied = copy_one(&mut conn, &sql, rows.as_bytes()).await;
                let _ = conn.close().await;
                copied
            })
        })
        .collect();
    let (mut rows, mut cpu) = (0, 0.0);
    for task in tasks {
        match timeout_at(deadline, task).await {
            Ok(Ok(Ok((n, backend_cpu)))) => {
                rows += n;
                cpu += backend_cpu;
            }
            Ok(Ok(Err(e))) => report.fail(e),
            Ok(Err(e)) => report.fail(format!("COPY task: {e}")),
            Err(_) => report.fail("deadline during COPY"),
        }
    }
    let took = start.elapsed();
    report.set("copied_rows", rows);
    report.set(
        "copied_mib",
        format!("{:.1}", bytes as f64 / (1 << 20) as f64),
    );
    report.seconds("copy_s", took);
    report.rate("copy_rows_per_s", rows, took);
    report.set("copy_pg_cpu_s", format!("{cpu:.2}"));
    if rows != shape.valid_points() {
        report.fail(format!(
            "COPY stored {rows} of {} rows",
            shape.valid_points()
        ));
    }
    Ok(())
}

/// One `COPY … FROM STDIN` of `rows`; returns the rows the server counted
/// and the CPU seconds its server process spent meanwhile.
async fn copy_one(conn: &mut PgConnection, sql: &str, rows: &[u8]) -> Result<(u64, f64), String> {
    let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| format!("pg_backend_pid(): {e}"))?;
    let backend = backend.to_string();
    let cpu_before = cpu_seconds(&backend);
    let copied = copy_rows(conn, sql, rows).await?;
    let cpu = match (cpu_before, cpu_seconds(&backend)) {
        (Some(before), Some(after)) => after - before,
        _ => 0.0,
    };
    Ok((copied, cpu))
}

async fn copy_rows(conn: &mut PgConnection, sql: &str, rows: &[u8]) -> Result<u64, String> {
    let mut copy = conn
        .copy_in_raw(sql)
        .await
        .map_err(|e| format!("COPY start: {e}"))?;
    for chunk in rows.chunks(CHUNK) {
        copy.send(chunk)
            .await
            .map_err(|e| format!("COPY data: {e}"))?;
    }
    copy.finish().await.map_err(|e| format!("COPY end: {e}"))
}
