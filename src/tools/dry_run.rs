//! `runner dry-run`: one payload through a compiled [`Plan`], synchronously,
//! with no broker and no database.
//!
//! The payload goes through the source's own admission ([`admit`]: size
//! limit, then topic pattern) and then through the very
//! [`Stage::process`](crate::stage::step::Stage::process)
//! the live runner calls, following each stage's outputs exactly as
//! `graph::run` wires them, until it reaches a sink. What the sink would
//! write is reported as rows ([`super::rows`]); a rejection is reported with
//! its reason, its detail and the stage that gave it.

use std::sync::Arc;

use bytes::Bytes;

use crate::delivery::DeliveryToken;
use crate::envelope::{Body, Envelope, Reason};
use crate::graph::plan::{NodeRef, Plan};
use crate::sink::postgres::kind::SinkKind;
use crate::source::admit::{admit, Admission};
use crate::stage::step::Step;

use super::rows::{rows_of, Row};

/// Where one payload went and what it became.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// The topic it was published on.
    pub topic: String,
    /// The stages it passed through, in order, and the sink it reached.
    pub path: Vec<String>,
    /// What became of it.
    pub outcome: Outcome,
}

/// The end of a payload's journey.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// It reached a data sink, which would write these rows.
    Stored {
        /// The sink's name.
        sink: String,
        /// Its kind.
        kind: SinkKind,
        /// The table it writes, as `schema.table`.
        table: String,
        /// The rows, column by column.
        rows: Vec<Row>,
    },
    /// It was refused and goes to the dead-letter sink.
    Rejected {
        /// The dead-letter sink's name.
        sink: String,
        /// `source` or the name of the stage that refused it.
        by: String,
        /// The stable reason code.
        reason: Reason,
        /// The human detail, as stored in `ingest_errors.detail`.
        detail: String,
    },
}

impl Outcome {
    /// Whether the payload was refused.
    pub fn is_rejected(&self) -> bool {
        matches!(self, Outcome::Rejected { .. })
    }
}

/// A plan a payload cannot be walked through: only a plan built by hand,
/// never one from `compile`, which refuses both.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DryRunError {
    /// The stages lead back to one already visited.
    #[error("the pipeline loops: {}", path.join(" → "))]
    Cycle {
        /// The stages visited.
        path: Vec<String>,
    },
    /// A stage chose an output it does not have.
    #[error("stage {stage} sent to output {port}, which it does not have")]
    NoSuchOutput {
        /// The stage.
        stage: String,
        /// The output it chose.
        port: usize,
    },
    /// A stage refused an envelope without saying why.
    #[error("{by} rejected a message without a reason")]
    Unexplained {
        /// `source` or the stage.
        by: String,
    },
}

/// Runs one payload, published on `topic`, through `plan`.
pub fn dry_run(plan: &Plan, topic: &str, payload: Bytes) -> Result<Trace, DryRunError> {
    let Walk { path, end } = walk(plan, topic, payload)?;
    let path = path.into_iter().map(str::to_string).collect();
    match end {
        End::Sink(i, envelope) => Ok(reached(plan, topic, path, i, &envelope)),
        End::Rejected(by, envelope) => rejected(plan, topic, path, by, envelope),
    }
}

/// One payload's way through the plan.
#[derive(Debug)]
pub struct Walk<'p> {
    /// The stages it went through, in order.
    pub path: Vec<&'p str>,
    /// Where it ended.
    pub end: End<'p>,
}

/// Where a walk through the plan ended.
#[derive(Debug)]
pub enum End<'p> {
    /// At data sink `i`, with the envelope it would write.
    Sink(usize, Envelope),
    /// Refused by `source` or the named stage; the body is the rejection.
    Rejected(&'p str, Envelope),
}

/// Takes one payload through admission and the stages, as the live runner
/// does. Shared by the dry run and the stage cost measurement
/// (`examples/stage_cost.rs`), so both measure the code the runner runs.
pub fn walk<'p>(plan: &'p Plan, topic: &str, payload: Bytes) -> Result<Walk<'p>, DryRunError> {
    let mut path = Vec::new();
    let token = DeliveryToken::detached();
    let mut envelope = match admit(&plan.source, Arc::from(topic), payload, token) {
        Admission::Next(envelope) => envelope,
        Admission::DeadLetter(envelope) => {
            let end = End::Rejected("source", envelope);
            return Ok(Walk { path, end });
        }
    };
    let mut node = plan.source.next;
    // A compiled plan has no cycle, so a walk visits each stage at most once.
    for _ in 0..=plan.stages.len() {
        let stage_plan = match node {
            NodeRef::Sink(i) => {
                let end = End::Sink(i, envelope);
                return Ok(Walk { path, end });
            }
            NodeRef::Stage(i) => &plan.stages[i],
        };
        path.push(stage_plan.name.as_str());
        match stage_plan.stage.process(envelope) {
            Step::Next(port, next) => {
                node = *stage_plan
                    .outputs
                    .get(port)
                    .ok_or_else(|| DryRunError::NoSuchOutput {
                        stage: stage_plan.name.clone(),
                        port,
                    })?;
                envelope = next;
            }
            Step::Reject(refused) => {
                let end = End::Rejected(&stage_plan.name, refused);
                return Ok(Walk { path, end });
            }
        }
    }
    Err(DryRunError::Cycle {
        path: path.into_iter().map(str::to_string).collect(),
    })
}

/// The trace of a payload that reached sink `i`.
fn reached(
    plan: &Plan,
    topic: &str,
    mut path: Vec<String>,
    i: usize,
    envelope: &Envelope,
) -> Trace {
    let sink = &plan.sinks[i];
    path.push(sink.name.clone());
    Trace {
        topic: topic.to_string(),
        path,
        outcome: Outcome::Stored {
            sink: sink.name.clone(),
            kind: sink.kind,
            table: sink.table.to_string().replace('"', ""),
            rows: rows_of(envelope),
        },
    }
}

/// The trace of a payload refused by `by`.
fn rejected(
    plan: &Plan,
    topic: &str,
    mut path: Vec<String>,
    by: &str,
    envelope: Envelope,
) -> Result<Trace, DryRunError> {
    let Body::Rejected(rejection) = envelope.body else {
        return Err(DryRunError::Unexplained { by: by.to_string() });
    };
    let sink = plan.node_name(NodeRef::Sink(plan.dead_letter)).to_string();
    path.push(sink.clone());
    Ok(Trace {
        topic: topic.to_string(),
        path,
        outcome: Outcome::Rejected {
            sink,
            by: by.to_string(),
            reason: rejection.reason,
            detail: rejection.detail,
        },
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::graph::compile::compile_with_env;

    const TELEM: &str = "traksense/test_alpha/factory/device123/telem";

    fn shipped() -> Plan {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/traksense.yaml");
        compile_with_env(&file, &|_| None).expect("the shipped pipeline compiles")
    }

    fn run(topic: &str, payload: &str) -> Trace {
        dry_run(&shipped(), topic, Bytes::from(payload.to_string())).expect("walkable plan")
    }

    #[test]
    fn v1_telemetry_reaches_ts_measure_as_rows() {
        let trace = run(
            TELEM,
            r#"{"schema":"v1","ts":"2025-10-07T15:30:00Z","points":[{"name":"a","v":1.5,"u":"°C"}]}"#,
        );
        assert_eq!(trace.path, ["by_kind", "telemetry", "ts_measure"]);
        let Outcome::Stored { sink, rows, .. } = trace.outcome else {
            panic!("not stored: {trace:?}");
        };
        assert_eq!(sink, "ts_measure");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["tenant_id"], "test_alpha");
        assert_eq!(rows[0]["v_num"], 1.5);
        assert_eq!(rows[0]["unit"], "°C");
    }

    #[test]
    fn the_source_refuses_oversize_before_a_bad_topic() {
        let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(300_000));
        let trace = run("not/a/traksense/topic", &big);
        match trace.outcome {
            Outcome::Rejected { by, reason, .. } => {
                assert_eq!(by, "source");
                assert_eq!(reason, Reason::TooLarge);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(trace.path, ["dead_letter"]);
    }

    #[test]
    fn a_stage_rejection_names_the_stage_and_the_detail() {
        let trace = run(TELEM, r#"{"schema":"v9"}"#);
        match trace.outcome {
            Outcome::Rejected {
                by, reason, detail, ..
            } => {
                assert_eq!(by, "telemetry");
                assert_eq!(reason, Reason::UnknownSchema);
                assert!(detail.contains("\"v9\""), "{detail}");
            }
            other => panic!("{other:?}"),
        }
    }
}
