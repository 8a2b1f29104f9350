//! Running a plan: one tokio task per stage and per sink, joined by bounded
//! channels, fed by the MQTT source.
//!
//! Shutdown is a cascade of dropped senders, as in mini-redis: only the
//! source watches the cancellation token; when it stops taking messages it
//! drops its senders, each stage ends when its input is empty and closed,
//! each sink flushes and ends, and the last commits settle the last tokens.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::envelope::Envelope;
use crate::graph::plan::{NodeRef, Plan};
use crate::sink::postgres::error::backoff;
use crate::sink::postgres::setup::{self, SetupError};
use crate::sink::postgres::writer::Writer;
use crate::sink::postgres::{batch, dead_letter};
use crate::source::mqtt::{MqttSource, SourceError, SourceOutputs};
use crate::stage::step::{Stage, Step};
use crate::telemetry::{add, get, Health, SinkStats, SourceStats, StageStats};

/// Why a run ended in error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The database could not be prepared.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The source stopped abnormally.
    #[error(transparent)]
    Source(#[from] SourceError),
}

/// Totals at the end of a run, for the stop log and for tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunSummary {
    /// Messages received from the broker.
    pub received: u64,
    /// Messages acknowledged to the broker.
    pub acknowledged: u64,
    /// `(sink name, messages committed, rows committed)`.
    pub sinks: Vec<(String, u64, u64)>,
    /// Tokens dropped without a commit (always 0 unless something is wrong).
    pub dropped: u64,
}

/// Prepares the database (waiting, with backoff, while it is unreachable),
/// then runs the pipeline until `shutdown` and a complete drain.
pub async fn run(
    plan: Plan,
    shutdown: CancellationToken,
    health: Arc<Health>,
) -> Result<RunSummary, RunError> {
    let mut attempt = 0;
    let pool = loop {
        match setup::prepare(&plan.database).await {
            Ok(pool) => break pool,
            Err(e) if e.is_transient() => {
                let wait = backoff(attempt, Duration::from_secs(10));
                attempt += 1;
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "database not reachable yet; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.cancelled() => return Ok(RunSummary::default()),
                }
            }
            Err(e) => return Err(e.into()),
        }
    };
    let summary = run_with_pool(plan, pool.clone(), shutdown, health).await;
    pool.close().await;
    summary
}

/// Runs the pipeline on an existing pool (migrated, role in place).
pub async fn run_with_pool(
    plan: Plan,
    pool: PgPool,
    shutdown: CancellationToken,
    health: Arc<Health>,
) -> Result<RunSummary, RunError> {
    let mut senders: HashMap<NodeRef, mpsc::Sender<Envelope>> = HashMap::new();
    let mut stage_inputs = Vec::new();
    let mut sink_inputs = Vec::new();
    for (i, stage) in plan.stages.iter().enumerate() {
        let (tx, rx) = mpsc::channel(stage.queue);
        senders.insert(NodeRef::Stage(i), tx);
        stage_inputs.push(rx);
    }
    for (i, sink) in plan.sinks.iter().enumerate() {
        let (tx, rx) = mpsc::channel(sink.queue);
        senders.insert(NodeRef::Sink(i), tx);
        sink_inputs.push(rx);
    }
    let sender = |node: NodeRef| senders.get(&node).cloned();
    let dead_tx = sender(NodeRef::Sink(plan.dead_letter));
    let tracker = TaskTracker::new();

    let mut sink_stats = Vec::new();
    for (i, (sink, input)) in plan.sinks.iter().zip(sink_inputs).enumerate() {
        let stats = Arc::new(SinkStats::default());
        sink_stats.push((sink.name.clone(), stats.clone()));
        let writer = Writer::new(sink, pool.clone(), &plan.database.role);
        let dead = if i == plan.dead_letter {
            None
        } else {
            dead_tx.clone()
        };
        tracing::info!(
            sink = %sink.name, kind = sink.kind.name(), table = %sink.table, queue = sink.queue,
            max_rows = sink.batch.max_rows, max_ms = sink.batch.max_wait.as_millis() as u64, "sink"
        );
        tracker.spawn(batch::run(writer, sink.batch, input, dead, stats));
    }

    let mut stages = plan.stages;
    for (stage_plan, input) in stages.drain(..).zip(stage_inputs) {
        let outputs: Option<Vec<_>> = stage_plan.outputs.iter().map(|n| sender(*n)).collect();
        let (Some(outputs), Some(dead)) = (outputs, dead_tx.clone()) else {
            continue; // unreachable: compile resolved every output
        };
        tracing::info!(
            stage = %stage_plan.name, kind = stage_plan.stage.kind(), queue = stage_plan.queue, "stage"
        );
        let stats = Arc::new(StageStats::default());
        tracker.spawn(run_stage(
            stage_plan.name,
            stage_plan.stage,
            input,
            outputs,
            dead,
            stats,
        ));
    }

    let retention = match (
        plan.database.dlq_retention,
        plan.sinks.get(plan.dead_letter),
    ) {
        (Some(keep), Some(sink)) => Some(tokio::spawn(dead_letter::retain(
            pool.clone(),
            sink.table.clone(),
            keep,
        ))),
        _ => None,
    };

    let source_stats = Arc::new(SourceStats::default());
    let source = MqttSource::new(&plan.source, source_stats.clone(), health);
    let ledger = source.ledger();
    let (Some(next), Some(dead)) = (sender(plan.source.next), dead_tx) else {
        unreachable!("compile resolves source.next and the dead-letter sink");
    };
    drop(senders);
    tracker.close();
    let outputs = SourceOutputs { next, dead };
    let result = source.run(outputs, shutdown, plan.shutdown_timeout).await;
    // Normally every task has ended by now (the drain waited for the last
    // commit); after a drain timeout, give them a moment, then stop waiting.
    if tokio::time::timeout(Duration::from_secs(5), tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some stage or sink tasks were still busy at stop");
    }
    if let Some(task) = retention {
        task.abort();
    }
    let summary = RunSummary {
        received: get(&source_stats.received),
        acknowledged: get(&source_stats.acked),
        sinks: sink_stats
            .iter()
            .map(|(name, s)| (name.clone(), get(&s.messages), get(&s.rows)))
            .collect(),
        dropped: ledger.dropped(),
    };
    for (name, messages, rows) in &summary.sinks {
        tracing::info!(sink = %name, messages, rows, "sink totals");
    }
    result?;
    Ok(summary)
}

/// One stage's task: process until the input is closed and empty.
async fn run_stage(
    name: String,
    stage: Stage,
    mut input: mpsc::Receiver<Envelope>,
    outputs: Vec<mpsc::Sender<Envelope>>,
    dead: mpsc::Sender<Envelope>,
    stats: Arc<StageStats>,
) {
    while let Some(envelope) = input.recv().await {
        add(&stats.received, 1);
        let (channel, envelope) = match stage.process(envelope) {
            Step::Next(port, envelope) => {
                add(&stats.sent, 1);
                match outputs.get(port) {
                    Some(out) => (out, envelope),
                    None => {
                        tracing::error!(stage = %name, port, "BUG: stage chose an output it does not have");
                        continue;
                    }
                }
            }
            Step::Reject(envelope) => {
                add(&stats.rejected, 1);
                (&dead, envelope)
            }
        };
        if channel.send(envelope).await.is_err() {
            tracing::error!(stage = %name, "downstream task ended; stage stopping");
            break;
        }
    }
    tracing::debug!(
        stage = %name, received = get(&stats.received), sent = get(&stats.sent),
        rejected = get(&stats.rejected), "stage drained"
    );
}
