//! The sink task: collects envelopes into a batch and flushes it when it
//! holds `max_rows` rows or its first envelope has waited `max_wait`. When
//! the input closes (the pipeline is draining) it flushes what it has and
//! returns: a drain is dropped senders, not a signal.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use crate::envelope::Envelope;
use crate::graph::plan::BatchPlan;
use crate::telemetry::SinkStats;

use super::timeseries::rows_of;
use super::writer::Writer;

/// Runs one sink until its input closes.
pub async fn run(
    writer: Writer,
    batch: BatchPlan,
    mut input: mpsc::Receiver<Envelope>,
    dead: Option<mpsc::Sender<Envelope>>,
    stats: Arc<SinkStats>,
) {
    let mut pending: Vec<Envelope> = Vec::new();
    let mut rows = 0usize;
    let mut deadline: Option<Instant> = None;
    let far = || Instant::now() + std::time::Duration::from_secs(86_400);
    loop {
        let received = tokio::select! {
            biased;
            received = input.recv() => received,
            _ = sleep_until(deadline.unwrap_or_else(far)), if deadline.is_some() => {
                let full = std::mem::take(&mut pending);
                writer.flush(full, dead.as_ref(), &stats).await;
                rows = 0;
                deadline = None;
                continue;
            }
        };
        let Some(envelope) = received else { break };
        if pending.is_empty() {
            deadline = Some(Instant::now() + batch.max_wait);
        }
        rows += rows_of(&envelope);
        pending.push(envelope);
        if rows >= batch.max_rows {
            let full = std::mem::take(&mut pending);
            writer.flush(full, dead.as_ref(), &stats).await;
            rows = 0;
            deadline = None;
        }
    }
    if !pending.is_empty() {
        writer.flush(pending, dead.as_ref(), &stats).await;
    }
    tracing::debug!(sink = writer.name(), "sink drained");
}
