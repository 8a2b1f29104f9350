//! Whole-graph checks, run once every name is resolved: routes on captures
//! that exist, no cycles, nothing routed into the dead-letter sink, every
//! sink fed the rows it writes, and (as warnings) nothing unreachable.

use std::collections::HashSet;

use crate::config::error::ConfigError;
use crate::config::load::RawPipeline;
use crate::graph::plan::{NodeRef, SourcePlan};
use crate::sink::postgres::kind::SinkKind;
use crate::stage::normalize::Output;

use super::stages::describe;

/// What a node does to the envelopes passing through, for the checks.
#[derive(Debug, Clone)]
pub(super) enum Effect {
    /// A router on a topic capture.
    Route { on: String },
    /// JSON parse and validation.
    Validate,
    /// Rows out (`None` if its formats failed to compile).
    Normalize(Option<Output>),
    /// A sink (`None` if its type failed to compile).
    Sink(Option<SinkKind>),
}

/// A stage or sink as the checks see it.
#[derive(Debug)]
pub(super) struct Node {
    /// `stages.NAME` or `sinks.NAME`.
    pub path: String,
    /// Itself.
    pub me: NodeRef,
    /// `(field path of the reference, target)`.
    pub outputs: Vec<(String, NodeRef)>,
    /// What it does.
    pub effect: Effect,
}

impl Node {
    pub(super) fn sink(path: String, me: NodeRef, kind: Option<SinkKind>) -> Node {
        Node {
            path,
            me,
            outputs: Vec::new(),
            effect: Effect::Sink(kind),
        }
    }
}

/// What the envelopes on an edge carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carried {
    Raw,
    Json,
    Rows(Output),
    Unknown,
}

/// Runs every check; errors go to `raw`, warnings are returned.
pub(super) fn check(
    raw: &mut RawPipeline,
    nodes: &[Node],
    source: Option<&SourcePlan>,
) -> Vec<ConfigError> {
    let find = |r: NodeRef| nodes.iter().find(|n| n.me == r);
    let captures: Option<Vec<String>> =
        source.map(|s| s.topic.captures().map(str::to_string).collect());

    for node in nodes {
        match (&node.effect, &captures) {
            (Effect::Route { on }, Some(caps)) if !caps.contains(on) => raw.error(
                &format!("{}.on", node.path),
                format!("the topic pattern has no {{{on}}} capture"),
                Some(format!("route on one of: {}", caps.join(", "))),
            ),
            (Effect::Sink(Some(SinkKind::Timeseries | SinkKind::AckUpsert)), Some(caps)) => {
                for needed in ["tenant", "device"] {
                    if !caps.iter().any(|c| c == needed) {
                        raw.error(
                            "source.topic",
                            format!(
                                "sink {} needs a {{{needed}}} capture in the topic",
                                node.path
                            ),
                            Some(
                                "rows are keyed by the tenant and device taken from the topic"
                                    .into(),
                            ),
                        );
                    }
                }
            }
            _ => {}
        }
        for (path, target) in &node.outputs {
            if let Some(Effect::Sink(Some(SinkKind::DeadLetter))) = find(*target).map(|n| &n.effect)
            {
                raw.error(
                    path,
                    "routes into the dead_letter sink",
                    Some(
                        "rejected messages reach it by themselves; route to a stage or a data sink"
                            .into(),
                    ),
                );
            }
        }
    }

    if let Some(cycle) = find_cycle(nodes) {
        let names: Vec<&str> = cycle
            .iter()
            .map(|r| nodes.iter().find(|n| n.me == *r).map_or("?", |n| &n.path))
            .collect();
        let closing = nodes
            .iter()
            .find(|n| n.me == cycle[cycle.len() - 2])
            .and_then(|n| n.outputs.iter().find(|(_, t)| *t == cycle[0]))
            .map(|(p, _)| p.clone())
            .unwrap_or_default();
        raw.error(
            &closing,
            format!("cycle: {}", names.join(" → ")),
            Some("every message must flow forward to a sink".into()),
        );
        return Vec::new();
    }

    let Some(source) = source else {
        return Vec::new();
    };
    // Walk from the source, tracking what each edge carries.
    // (node, what arrives) pairs already walked; a handful per node.
    let mut seen: Vec<(NodeRef, Carried)> = Vec::new();
    let mut reached: HashSet<NodeRef> = HashSet::new();
    let mut todo = vec![("source.next".to_string(), source.next, Carried::Raw)];
    while let Some((via, node_ref, carried)) = todo.pop() {
        reached.insert(node_ref);
        if seen.contains(&(node_ref, carried)) {
            continue;
        }
        seen.push((node_ref, carried));
        let Some(node) = find(node_ref) else { continue };
        let out = match (&node.effect, carried) {
            (Effect::Route { .. }, c) => c,
            (Effect::Validate, Carried::Raw | Carried::Json) => Carried::Json,
            (Effect::Normalize(o), Carried::Raw | Carried::Json) => {
                o.map_or(Carried::Unknown, Carried::Rows)
            }
            (Effect::Sink(Some(kind)), c) => {
                let wanted = kind.accepts();
                if c != Carried::Unknown && wanted.is_some() && wanted.map(Carried::Rows) != Some(c)
                {
                    let wanted = wanted.map_or("", describe);
                    raw.error(
                        &via,
                        format!(
                            "sends {} to {} ({}), which writes {wanted}",
                            carried_text(c),
                            node.path,
                            kind.name()
                        ),
                        Some(
                            "route it through a normalize stage whose formats produce those rows"
                                .into(),
                        ),
                    );
                }
                continue;
            }
            (Effect::Sink(None), _) => continue,
            (_, Carried::Unknown) => Carried::Unknown,
            (Effect::Validate | Effect::Normalize(_), Carried::Rows(o)) => {
                raw.error(
                    &via,
                    format!(
                        "sends {} to {}, which expects a JSON payload",
                        describe(o),
                        node.path
                    ),
                    Some("normalize is the last step before a sink".into()),
                );
                continue;
            }
        };
        for (path, target) in &node.outputs {
            todo.push((path.clone(), *target, out));
        }
    }
    nodes
        .iter()
        .filter(|n| !reached.contains(&n.me))
        .filter(|n| !matches!(n.effect, Effect::Sink(Some(SinkKind::DeadLetter))))
        .map(|n| ConfigError {
            file: raw.file.clone(),
            location: raw.locator.key_or_value(&n.path),
            path: n.path.clone(),
            message: "unreachable: no route from the source leads here".into(),
            hint: Some("route to it, or remove it".into()),
        })
        .collect()
}

fn carried_text(c: Carried) -> &'static str {
    match c {
        Carried::Raw => "raw payloads",
        Carried::Json => "JSON documents",
        Carried::Rows(o) => describe(o),
        Carried::Unknown => "messages",
    }
}

/// A cycle as `[a, b, …, a]`, if there is one.
fn find_cycle(nodes: &[Node]) -> Option<Vec<NodeRef>> {
    fn visit(
        nodes: &[Node],
        at: NodeRef,
        stack: &mut Vec<NodeRef>,
        done: &mut HashSet<NodeRef>,
    ) -> Option<Vec<NodeRef>> {
        if let Some(pos) = stack.iter().position(|r| *r == at) {
            let mut cycle = stack[pos..].to_vec();
            cycle.push(at);
            return Some(cycle);
        }
        if !done.insert(at) {
            return None;
        }
        stack.push(at);
        let node = nodes.iter().find(|n| n.me == at)?;
        for (_, next) in &node.outputs {
            if let Some(c) = visit(nodes, *next, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        None
    }
    let mut done = HashSet::new();
    for n in nodes {
        if let Some(c) = visit(nodes, n.me, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}
