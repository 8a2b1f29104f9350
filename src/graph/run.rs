//! Running a plan: one tokio task per stage and per sink, joined by bounded
//! channels, fed by the MQTT source, observed through [`Telemetry`].
//!
//! Shutdown is a cascade of dropped senders, as in mini-redis: only the
//! source watches the cancellation token; when it stops taking messages it
//! drops its senders, each stage ends when its input is empty and closed,
//! each sink flushes and ends, and the last commits settle the last tokens.
//! A stage or sink task that ends before that stops the source too
//! ([`super::watch`]), and the run ends in error.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backoff::backoff;
use crate::envelope::Envelope;
use crate::graph::plan::{NodeRef, Plan};
use crate::sink::postgres::setup::{self, SetupError};
use crate::sink::postgres::writer::Writer;
use crate::sink::postgres::{batch, dead_letter};
use crate::source::mqtt::{MqttSource, SourceError, SourceOutputs};
use crate::stage::step::Stage;
use crate::telemetry::metrics::PipelineView;
use crate::telemetry::queue::{self, QueueProbe};
use crate::telemetry::{get, http, SinkStats, SourceStats, StageStats, Telemetry};

use super::stage_task::run_stage;
use super::watch::TaskWatch;

/// Why a run ended in error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The database could not be prepared.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The source stopped abnormally.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A stage or sink task ended while the pipeline was running.
    #[error(
        "{task} stopped while the pipeline was running (a bug: see the error logged before); \
             the runner stopped so that its supervisor restarts it, and unacknowledged messages \
             are redelivered by the broker"
    )]
    TaskEnded {
        /// `stage NAME` or `sink NAME`.
        task: String,
    },
    /// The metrics port could not be bound.
    #[error("cannot listen for /metrics on {addr}: {source}; set METRICS_PORT (runtime.metrics_port) to a free port")]
    MetricsListen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
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

/// Serves `/metrics`, `/healthz` and `/readyz`, prepares the database
/// (waiting, with backoff, while it is unreachable), then runs the pipeline
/// until `shutdown` and a complete drain.
pub async fn run(
    plan: Plan,
    shutdown: CancellationToken,
    telemetry: Arc<Telemetry>,
) -> Result<RunSummary, RunError> {
    let addr = plan.metrics_addr;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| RunError::MetricsListen { addr, source })?;
    if let Ok(bound) = listener.local_addr() {
        telemetry.set_addr(bound);
        tracing::info!(addr = %bound, "serving /metrics, /healthz and /readyz");
    }
    let server_stop = CancellationToken::new();
    let server = tokio::spawn(http::serve(
        listener,
        telemetry.metrics.clone(),
        telemetry.health.clone(),
        server_stop.clone(),
    ));
    let result = prepare_and_run(plan, shutdown, telemetry).await;
    server_stop.cancel();
    let _ = server.await;
    result
}

async fn prepare_and_run(
    plan: Plan,
    shutdown: CancellationToken,
    telemetry: Arc<Telemetry>,
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
    telemetry.health.set_db_up(true);
    let summary = run_with_pool(plan, pool.clone(), shutdown, telemetry).await;
    pool.close().await;
    summary
}

/// Runs the pipeline on an existing pool (migrated, role in place).
pub async fn run_with_pool(
    plan: Plan,
    pool: PgPool,
    shutdown: CancellationToken,
    telemetry: Arc<Telemetry>,
) -> Result<RunSummary, RunError> {
    let mut senders: HashMap<NodeRef, mpsc::Sender<Envelope>> = HashMap::new();
    let mut probes = Vec::new();
    let mut stage_inputs = Vec::new();
    let mut sink_inputs = Vec::new();
    // The channels the source feeds hold every message the broker may have
    // in flight (source.queue ≥ receive_maximum, checked at compile time), so
    // handing a message in never blocks the MQTT event loop, whatever is slow
    // downstream: keep-alives and shutdown stay responsive.
    let capacity = |node: NodeRef, queue: usize| {
        if node == plan.source.next || node == NodeRef::Sink(plan.dead_letter) {
            queue.max(plan.source.queue)
        } else {
            queue
        }
    };
    for (i, stage) in plan.stages.iter().enumerate() {
        let (tx, rx) = mpsc::channel(capacity(NodeRef::Stage(i), stage.queue));
        probes.push(QueueProbe::new(&stage.name, &tx));
        senders.insert(NodeRef::Stage(i), tx);
        stage_inputs.push(rx);
    }
    for (i, sink) in plan.sinks.iter().enumerate() {
        let (tx, rx) = mpsc::channel(capacity(NodeRef::Sink(i), sink.queue));
        probes.push(QueueProbe::new(&sink.name, &tx));
        senders.insert(NodeRef::Sink(i), tx);
        sink_inputs.push(rx);
    }
    let sender = |node: NodeRef| senders.get(&node).cloned();
    let dead_tx = sender(NodeRef::Sink(plan.dead_letter));
    let tracker = TaskTracker::new();
    // The source stops when asked to, or when a stage or sink task dies.
    let stop = shutdown.child_token();
    let watch = TaskWatch::new(stop.clone());

    let mut sink_stats = Vec::new();
    for (i, (sink, input)) in plan.sinks.iter().zip(sink_inputs).enumerate() {
        let stats = Arc::new(SinkStats::default());
        sink_stats.push((sink.name.clone(), sink.kind, stats.clone()));
        let writer = Writer::new(sink, pool.clone(), &plan.database.role)
            .with_metrics(telemetry.metrics.sink(&sink.name, sink.kind));
        let dead = if i == plan.dead_letter {
            None
        } else {
            dead_tx.clone()
        };
        tracing::info!(
            sink = %sink.name, kind = sink.kind.name(), table = %sink.table, queue = sink.queue,
            max_rows = sink.batch.max_rows, max_ms = sink.batch.max_wait.as_millis() as u64, "sink"
        );
        tracker.spawn(watch.guarded(
            format!("sink {}", sink.name),
            batch::run(writer, sink.batch, input, dead, stats),
        ));
    }

    let (type_capture, types) = message_types(&plan);
    let source_stats = Arc::new(SourceStats::with_types(&type_capture, types));
    let mut stage_stats = Vec::new();
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
        stage_stats.push((stage_plan.name.clone(), stats.clone()));
        tracker.spawn(watch.guarded(
            format!("stage {}", stage_plan.name),
            run_stage(
                stage_plan.name,
                stage_plan.stage,
                input,
                outputs,
                dead,
                stats,
            ),
        ));
    }

    telemetry.metrics.observe(Arc::new(PipelineView {
        source: source_stats.clone(),
        stages: stage_stats,
        sinks: sink_stats.clone(),
        queues: probes.clone(),
        health: telemetry.health.clone(),
    }));
    let background = [
        plan.database
            .dlq_retention
            .zip(plan.sinks.get(plan.dead_letter))
            .map(|(keep, sink)| {
                tokio::spawn(dead_letter::retain(pool.clone(), sink.table.clone(), keep))
            }),
        Some(tokio::spawn(setup::probe(
            pool.clone(),
            telemetry.health.clone(),
        ))),
        Some(tokio::spawn(queue::watch(probes, Duration::from_secs(1)))),
    ];

    let source = MqttSource::new(&plan.source, source_stats.clone(), telemetry.health.clone());
    let ledger = source.ledger();
    let (Some(next), Some(dead)) = (sender(plan.source.next), dead_tx) else {
        unreachable!("compile resolves source.next and the dead-letter sink");
    };
    drop(senders);
    tracker.close();
    let outputs = SourceOutputs { next, dead };
    let result = source.run(outputs, stop, plan.shutdown_timeout).await;
    // Normally every task has ended by now (the drain waited for the last
    // commit); after a drain timeout, give them a moment, then stop waiting.
    if tokio::time::timeout(Duration::from_secs(5), tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some stage or sink tasks were still busy at stop");
    }
    for task in background.into_iter().flatten() {
        task.abort();
    }
    let summary = RunSummary {
        received: get(&source_stats.received),
        acknowledged: get(&source_stats.acked),
        sinks: sink_stats
            .iter()
            .map(|(name, _, s)| (name.clone(), get(&s.messages), get(&s.rows)))
            .collect(),
        dropped: ledger.dropped(),
    };
    for (name, messages, rows) in &summary.sinks {
        tracing::info!(sink = %name, messages, rows, "sink totals");
    }
    if let Some(task) = watch.ended_early() {
        return Err(RunError::TaskEnded { task });
    }
    result?;
    Ok(summary)
}

/// The capture and values messages are counted by (`type` label): those of
/// the first router, e.g. `kind` → `telem`, `ack`. A bounded set, so the
/// label cannot grow with what devices publish.
fn message_types(plan: &Plan) -> (String, Vec<String>) {
    plan.stages
        .iter()
        .find_map(|s| match &s.stage {
            Stage::Router(router) => Some((
                router.on().to_string(),
                router.values().map(str::to_string).collect(),
            )),
            _ => None,
        })
        .unwrap_or_default()
}
