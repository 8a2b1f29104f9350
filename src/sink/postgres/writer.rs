//! Writing one batch: grouped by tenant into one transaction each, retried
//! while the failure may pass, split down to the offending message when the
//! database refuses the data itself. Tokens are committed only after their
//! transaction commits.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::mpsc;

use crate::envelope::{Body, Envelope, Reason};
use crate::graph::plan::SinkPlan;
use crate::telemetry::metrics::SinkMetrics;
use crate::telemetry::{add, SinkStats};

use super::dedup::{self, Dedup};
use super::error::{classify, Disposition};
use super::kind::SinkKind;
use super::table::TableName;
use super::{ack_upsert, dead_letter, tenant_tx, timeseries};
use crate::backoff::backoff;

/// Longest pause between retries of a failing write.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Writes batches for one sink.
#[derive(Debug, Clone)]
pub struct Writer {
    name: String,
    kind: SinkKind,
    table: TableName,
    /// The statement that is always right (for `ts_measure`: with `ON
    /// CONFLICT DO NOTHING`).
    sql: String,
    /// The cheaper statement tried first while [`Dedup`] allows it (only
    /// `ts_measure` has one).
    plain: Option<String>,
    dedup: Arc<Dedup>,
    pool: PgPool,
    role: String,
    metrics: Option<SinkMetrics>,
}

impl Writer {
    /// A writer for `plan`, writing as `role` through `pool`.
    pub fn new(plan: &SinkPlan, pool: PgPool, role: &str) -> Writer {
        let (sql, plain) = match plan.kind {
            SinkKind::Timeseries => (
                timeseries::sql(&plan.table, true),
                Some(timeseries::sql(&plan.table, false)),
            ),
            SinkKind::AckUpsert => (ack_upsert::sql(&plan.table), None),
            SinkKind::DeadLetter => (dead_letter::sql(&plan.table), None),
        };
        Writer {
            name: plan.name.clone(),
            kind: plan.kind,
            table: plan.table.clone(),
            sql,
            plain,
            dedup: Arc::new(Dedup::default()),
            pool,
            role: role.to_string(),
            metrics: None,
        }
    }

    /// Records batch sizes and latencies into `metrics`.
    pub fn with_metrics(mut self, metrics: SinkMetrics) -> Writer {
        self.metrics = Some(metrics);
        self
    }

    /// The sink's name, for logs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Writes `envelopes` in one transaction for `tenant`; returns rows sent.
    /// This is the whole write path: tests call it to prove that row-level
    /// security holds inside it.
    pub async fn write(
        &self,
        tenant: Option<&str>,
        envelopes: &[Envelope],
    ) -> Result<u64, sqlx::Error> {
        self.write_counted(tenant, envelopes, None).await
    }

    /// [`Writer::write`], counting fallbacks to the deduplicating statement
    /// into `stats`.
    async fn write_counted(
        &self,
        tenant: Option<&str>,
        envelopes: &[Envelope],
        stats: Option<&SinkStats>,
    ) -> Result<u64, sqlx::Error> {
        if let Some(plain) = self.plain.as_deref().filter(|_| self.dedup.optimistic()) {
            match self.write_with(plain, tenant, envelopes).await {
                Err(e) if dedup::is_duplicate_key(&e) => {
                    self.dedup.conflicted();
                    if let Some(stats) = stats {
                        add(&stats.dedup_fallbacks, 1);
                    }
                    tracing::debug!(
                        sink = %self.name, tenant = tenant.unwrap_or(""),
                        "rows already stored (a redelivery); writing again with ON CONFLICT DO NOTHING"
                    );
                }
                result => return result,
            }
        }
        self.write_with(&self.sql, tenant, envelopes).await
    }

    /// One transaction for `tenant` running `sql` over `envelopes`.
    async fn write_with(
        &self,
        sql: &str,
        tenant: Option<&str>,
        envelopes: &[Envelope],
    ) -> Result<u64, sqlx::Error> {
        let mut tx = tenant_tx::begin(&self.pool, &self.role, tenant).await?;
        let rows = match self.kind {
            SinkKind::Timeseries => timeseries::insert(&mut tx, sql, envelopes).await?,
            SinkKind::AckUpsert => ack_upsert::upsert(&mut tx, sql, envelopes).await?,
            SinkKind::DeadLetter => dead_letter::insert(&mut tx, sql, envelopes).await?,
        };
        tx.commit().await?;
        Ok(rows)
    }

    /// Writes a batch, then commits every token in it. Never gives up on a
    /// message: transient failures are retried with backoff; data the
    /// database refuses goes to `dead` as `db_rejected`.
    pub async fn flush(
        &self,
        batch: Vec<Envelope>,
        dead: Option<&mpsc::Sender<Envelope>>,
        stats: &Arc<SinkStats>,
    ) {
        let batch = self.screen(batch, dead).await;
        for (tenant, group) in by_tenant(batch) {
            let mut work = vec![group];
            while let Some(part) = work.pop() {
                match self.write_retrying(tenant.as_deref(), &part, stats).await {
                    Ok(rows) => {
                        add(&stats.messages, part.len() as u64);
                        add(&stats.rows, rows);
                        add(&stats.batches, 1);
                        if let Some(metrics) = &self.metrics {
                            metrics.committed(rows, &part);
                        }
                        for envelope in &part {
                            if let Body::Rejected(rejection) = &envelope.body {
                                stats.count_reason(rejection.reason);
                            }
                        }
                        part.into_iter().for_each(|e| e.token.commit());
                    }
                    Err(_) if part.len() > 1 => {
                        let mut left = part;
                        let right = left.split_off(left.len() / 2);
                        work.push(right);
                        work.push(left);
                    }
                    Err(error) => {
                        add(&stats.db_rejected, part.len() as u64);
                        for envelope in part {
                            self.refuse(envelope, &error, dead).await;
                        }
                    }
                }
            }
        }
    }

    /// Retries while the error may pass; returns the error that will not.
    async fn write_retrying(
        &self,
        tenant: Option<&str>,
        part: &[Envelope],
        stats: &SinkStats,
    ) -> Result<u64, sqlx::Error> {
        let mut attempt = 0;
        loop {
            match self.write_counted(tenant, part, Some(stats)).await {
                Ok(rows) => return Ok(rows),
                Err(e) if classify(&e) == Disposition::Reject => return Err(e),
                Err(e) => {
                    add(&stats.retries, 1);
                    let wait = backoff(attempt, MAX_BACKOFF);
                    tracing::warn!(
                        sink = %self.name, table = %self.table, tenant = tenant.unwrap_or(""),
                        error = %e, retry_in_ms = wait.as_millis() as u64,
                        "write failed; retrying (nothing is acknowledged meanwhile)"
                    );
                    tokio::time::sleep(wait).await;
                    attempt = attempt.saturating_add(1);
                }
            }
        }
    }

    /// Keeps what this sink can write; anything else is a wiring bug that
    /// `graph::compile` should have caught, so it is refused loudly.
    async fn screen(
        &self,
        batch: Vec<Envelope>,
        dead: Option<&mpsc::Sender<Envelope>>,
    ) -> Vec<Envelope> {
        let mut keep = Vec::with_capacity(batch.len());
        for envelope in batch {
            let fits = match (&envelope.body, self.kind) {
                (Body::Measures(_), SinkKind::Timeseries) | (Body::Ack(_), SinkKind::AckUpsert) => {
                    envelope.tenant().is_some()
                }
                (Body::Rejected(_), SinkKind::DeadLetter) => true,
                _ => false,
            };
            if fits {
                keep.push(envelope);
            } else if let Some(dead) = dead {
                tracing::error!(sink = %self.name, topic = %envelope.topic, "BUG: envelope this sink cannot write");
                let detail = format!(
                    "sink {} cannot write this message (no tenant, or not its row type)",
                    self.name
                );
                let _ = dead.send(envelope.reject(Reason::BadTopic, detail)).await;
            } else {
                tracing::error!(sink = %self.name, topic = %envelope.topic, "BUG: dead-letter sink got a non-rejection; not acknowledging it");
            }
        }
        keep
    }

    /// Sends a message the database refused to the dead-letter sink.
    async fn refuse(
        &self,
        envelope: Envelope,
        error: &sqlx::Error,
        dead: Option<&mpsc::Sender<Envelope>>,
    ) {
        let detail = match error {
            sqlx::Error::Database(db) => format!(
                "{} refused the row: {} (SQLSTATE {})",
                self.table,
                db.message(),
                db.code().unwrap_or_default()
            ),
            other => format!("{} refused the row: {other}", self.table),
        };
        match dead {
            Some(dead) => {
                tracing::warn!(sink = %self.name, topic = %envelope.topic, %detail, "db_rejected");
                let _ = dead.send(envelope.reject(Reason::DbRejected, detail)).await;
            }
            None => tracing::error!(
                sink = %self.name, topic = %envelope.topic, %detail,
                "dead letter refused by the database; not acknowledging it (the broker will redeliver)"
            ),
        }
    }
}

/// Groups envelopes by tenant, keeping first-seen order.
fn by_tenant(batch: Vec<Envelope>) -> Vec<(Option<String>, Vec<Envelope>)> {
    let mut groups: Vec<(Option<String>, Vec<Envelope>)> = Vec::new();
    for envelope in batch {
        let tenant = envelope.tenant();
        match groups.iter_mut().find(|(t, _)| t.as_deref() == tenant) {
            Some((_, group)) => group.push(envelope),
            None => {
                let key = tenant.map(str::to_string);
                groups.push((key, vec![envelope]));
            }
        }
    }
    groups
}
