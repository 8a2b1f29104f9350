//! `runner graph`: the compiled pipeline as a picture, so a reviewer sees
//! what a change to the YAML does. Mermaid (renders in GitHub and GitLab
//! markdown) by default, Graphviz DOT on request.
//!
//! Drawn from the [`Plan`], not from the file: routes as the compiler
//! resolved them, formats as a normalize stage will select them, and a
//! dashed edge from every step to the dead-letter sink, labelled with the
//! reasons that step can give. A stage no route reaches is drawn dashed.

use std::collections::HashSet;
use std::path::Path;

use crate::envelope::Reason;
use crate::graph::plan::{NodeRef, Plan};
use crate::source::admit;
use crate::stage::step::Stage;

/// The output notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notation {
    /// Mermaid `flowchart LR`.
    Mermaid,
    /// Graphviz `digraph`.
    Dot,
}

/// What a node is, which decides its shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Source,
    Router,
    Step,
    Sink,
}

#[derive(Debug)]
struct Node {
    id: String,
    shape: Shape,
    lines: Vec<String>,
    reachable: bool,
}

#[derive(Debug)]
struct Edge {
    from: String,
    to: String,
    label: Option<String>,
    rejection: bool,
}

/// Draws `plan` in `notation`.
pub fn render(plan: &Plan, notation: Notation) -> String {
    let (nodes, edges) = build(plan);
    match notation {
        Notation::Mermaid => mermaid(&nodes, &edges),
        Notation::Dot => dot(&nodes, &edges),
    }
}

fn build(plan: &Plan) -> (Vec<Node>, Vec<Edge>) {
    let mut ids = Ids::default();
    let source_id = ids.allocate("source");
    let stage_ids: Vec<String> = plan.stages.iter().map(|s| ids.allocate(&s.name)).collect();
    let sink_ids: Vec<String> = plan.sinks.iter().map(|s| ids.allocate(&s.name)).collect();
    let id_of = |n: NodeRef| match n {
        NodeRef::Stage(i) => stage_ids[i].clone(),
        NodeRef::Sink(i) => sink_ids[i].clone(),
    };
    let reached = reachable(plan);
    let dead = sink_ids[plan.dead_letter].clone();
    let reasons = |list: &[Reason]| {
        list.iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };

    let mut nodes = vec![Node {
        id: source_id.clone(),
        shape: Shape::Source,
        lines: vec![
            format!(
                "source: MQTT {}:{}",
                plan.source.mqtt.host, plan.source.mqtt.port
            ),
            plan.source.topic.to_string(),
            format!("max {} bytes", plan.source.max_payload_bytes),
        ],
        reachable: true,
    }];
    let mut edges = vec![
        Edge {
            from: source_id.clone(),
            to: id_of(plan.source.next),
            label: None,
            rejection: false,
        },
        Edge {
            from: source_id,
            to: dead.clone(),
            label: Some(reasons(&admit::REASONS)),
            rejection: true,
        },
    ];
    for (i, stage) in plan.stages.iter().enumerate() {
        let id = stage_ids[i].clone();
        let (shape, mut lines) = describe(&stage.stage);
        lines.insert(0, stage.name.clone());
        nodes.push(Node {
            id: id.clone(),
            shape,
            lines,
            reachable: reached.contains(&NodeRef::Stage(i)),
        });
        let labels: Vec<Option<String>> = match &stage.stage {
            Stage::Router(router) => (0..stage.outputs.len())
                .map(|port| {
                    let values: Vec<&str> = router
                        .routes()
                        .iter()
                        .filter(|(_, p)| *p == port)
                        .map(|(v, _)| v.as_str())
                        .collect();
                    Some(values.join(", "))
                })
                .collect(),
            Stage::JsonSchema(_) | Stage::Normalize(_) => vec![None; stage.outputs.len()],
        };
        for (to, label) in stage.outputs.iter().zip(labels) {
            edges.push(Edge {
                from: id.clone(),
                to: id_of(*to),
                label,
                rejection: false,
            });
        }
        edges.push(Edge {
            from: id,
            to: dead.clone(),
            label: Some(reasons(stage.stage.reasons())),
            rejection: true,
        });
    }
    for (i, sink) in plan.sinks.iter().enumerate() {
        let id = sink_ids[i].clone();
        nodes.push(Node {
            id: id.clone(),
            shape: Shape::Sink,
            lines: vec![
                sink.name.clone(),
                format!(
                    "{} → {}",
                    sink.kind.name(),
                    sink.table.to_string().replace('"', "")
                ),
            ],
            reachable: i == plan.dead_letter || reached.contains(&NodeRef::Sink(i)),
        });
        if i != plan.dead_letter {
            edges.push(Edge {
                from: id,
                to: dead.clone(),
                label: Some(Reason::DbRejected.as_str().to_string()),
                rejection: true,
            });
        }
    }
    (nodes, edges)
}

/// The shape and the lines under the name of a stage.
fn describe(stage: &Stage) -> (Shape, Vec<String>) {
    match stage {
        Stage::Router(router) => (
            Shape::Router,
            vec![format!("router on {{{}}}", router.on())],
        ),
        Stage::JsonSchema(schema) => (
            Shape::Step,
            vec![format!("json_schema {}", file_name(schema.name()))],
        ),
        Stage::Normalize(normalize) => {
            let detected: Vec<&str> = normalize
                .detected_formats()
                .map(|f| f.selector.as_str())
                .collect();
            let mut lines = vec![format!("normalize by {}", normalize.by())];
            for spec in normalize.formats() {
                let mut line = format!(
                    "{}: {} → {} ({})",
                    normalize.by(),
                    spec.selector,
                    spec.format.name(),
                    file_name(spec.schema.name())
                );
                if detected.contains(&spec.selector.as_str()) {
                    line.push_str(", or detected");
                }
                lines.push(line);
            }
            (Shape::Step, lines)
        }
    }
}

fn file_name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map_or_else(|| path.to_string(), |n| n.to_string_lossy().into_owned())
}

/// The nodes some route from the source leads to.
fn reachable(plan: &Plan) -> HashSet<NodeRef> {
    let mut seen = HashSet::new();
    let mut todo = vec![plan.source.next];
    while let Some(node) = todo.pop() {
        if !seen.insert(node) {
            continue;
        }
        if let NodeRef::Stage(i) = node {
            todo.extend(plan.stages[i].outputs.iter().copied());
        }
    }
    seen
}

/// Node ids that both notations accept: letters, digits and `_`, unique,
/// and not a Mermaid keyword.
#[derive(Default)]
struct Ids {
    used: HashSet<String>,
}

impl Ids {
    const RESERVED: [&'static str; 10] = [
        "end",
        "graph",
        "flowchart",
        "subgraph",
        "class",
        "classDef",
        "style",
        "click",
        "linkStyle",
        "direction",
    ];

    fn allocate(&mut self, name: &str) -> String {
        let base: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let mut id = base.clone();
        let mut n = 2;
        while self.used.contains(&id) || Self::RESERVED.contains(&id.as_str()) {
            id = format!("{base}_{n}");
            n += 1;
        }
        self.used.insert(id.clone());
        id
    }
}

fn mermaid(nodes: &[Node], edges: &[Edge]) -> String {
    let text = |s: &str| s.replace('"', "#quot;");
    let mut out = String::from("flowchart LR\n");
    for n in nodes {
        let label = n
            .lines
            .iter()
            .map(|l| text(l))
            .collect::<Vec<_>>()
            .join("<br/>");
        let (open, close) = match n.shape {
            Shape::Source => ("([", "])"),
            Shape::Router => ("{", "}"),
            Shape::Step => ("[", "]"),
            Shape::Sink => ("[(", ")]"),
        };
        out.push_str(&format!("    {}{open}\"{label}\"{close}\n", n.id));
    }
    for e in edges {
        let arrow = if e.rejection { "-.->" } else { "-->" };
        match &e.label {
            Some(l) => out.push_str(&format!(
                "    {} {arrow}|\"{}\"| {}\n",
                e.from,
                text(l),
                e.to
            )),
            None => out.push_str(&format!("    {} {arrow} {}\n", e.from, e.to)),
        }
    }
    let unreachable: Vec<&str> = nodes
        .iter()
        .filter(|n| !n.reachable)
        .map(|n| n.id.as_str())
        .collect();
    if !unreachable.is_empty() {
        out.push_str("    classDef unreachable stroke-dasharray: 5 5,opacity:0.6\n");
        out.push_str(&format!(
            "    class {} unreachable\n",
            unreachable.join(",")
        ));
    }
    out
}

fn dot(nodes: &[Node], edges: &[Edge]) -> String {
    let text = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut out = String::from(
        "digraph pipeline {\n    rankdir=LR;\n    node [fontname=\"Helvetica\", fontsize=11];\n    \
         edge [fontname=\"Helvetica\", fontsize=10];\n",
    );
    for n in nodes {
        let label = n
            .lines
            .iter()
            .map(|l| text(l))
            .collect::<Vec<_>>()
            .join("\\n");
        let shape = match n.shape {
            Shape::Source => "shape=box, style=rounded",
            Shape::Router => "shape=diamond",
            Shape::Step => "shape=box",
            Shape::Sink => "shape=cylinder",
        };
        let dashed = if n.reachable { "" } else { ", style=dashed" };
        out.push_str(&format!(
            "    \"{}\" [{shape}{dashed}, label=\"{label}\"];\n",
            n.id
        ));
    }
    for e in edges {
        let mut attrs = Vec::new();
        if let Some(l) = &e.label {
            attrs.push(format!("label=\"{}\"", text(l)));
        }
        if e.rejection {
            attrs.push("style=dashed, color=gray40, fontcolor=gray40".to_string());
        }
        let attrs = if attrs.is_empty() {
            String::new()
        } else {
            format!(" [{}]", attrs.join(", "))
        };
        out.push_str(&format!("    \"{}\" -> \"{}\"{attrs};\n", e.from, e.to));
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_safe_and_never_keywords() {
        let mut ids = Ids::default();
        assert_eq!(ids.allocate("source"), "source");
        assert_eq!(ids.allocate("source"), "source_2");
        assert_eq!(ids.allocate("a-b"), "a_b");
        assert_eq!(ids.allocate("a_b"), "a_b_2");
        assert_eq!(ids.allocate("end"), "end_2");
    }
}
