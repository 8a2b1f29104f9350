//! Compiles `stages:` entries into runnable stages, loading each schema file
//! once, relative to the pipeline file.

use std::path::Path;

use crate::config::error::{did_you_mean, suggest};
use crate::config::load::RawPipeline;
use crate::config::model::StageConfig;
use crate::graph::plan::{NodeRef, StagePlan};
use crate::stage::json_schema::JsonSchema;
use crate::stage::normalize::{Format, FormatSpec, Normalize, Output};
use crate::stage::router::Router;
use crate::stage::step::Stage;

use super::checks::{Effect, Node};
use super::pipeline::Names;

/// One `Option<StagePlan>` per `raw.stages` entry (in order, `None` where it
/// failed) and the graph node of every stage, for the graph checks.
pub(super) fn compile(
    raw: &mut RawPipeline,
    names: &Names,
    base: &Path,
) -> (Vec<Option<StagePlan>>, Vec<Node>) {
    let entries: Vec<_> = raw
        .stages
        .iter()
        .map(|(n, c)| (n.clone(), c.clone()))
        .collect();
    let mut plans = Vec::new();
    let mut nodes = Vec::new();
    for (i, (name, config)) in entries.into_iter().enumerate() {
        let path = format!("stages.{name}");
        let (stage, outputs, effect, queue) = match config {
            StageConfig::Router { on, routes, queue } => {
                if routes.is_empty() {
                    raw.error(
                        &format!("{path}.routes"),
                        "a router with no routes sends nothing to any sink",
                        Some("add `routes: { VALUE: stage_or_sink }`".into()),
                    );
                }
                let mut outputs = Vec::new();
                let mut table = Vec::new();
                for (value, target) in &routes {
                    let route_path = format!("{path}.routes.{value}");
                    if let Some(node) = names.resolve(raw, &route_path, target) {
                        table.push((value.clone(), outputs.len()));
                        outputs.push((route_path, node));
                    }
                }
                let ok = table.len() == routes.len() && !routes.is_empty();
                let stage = ok.then(|| Stage::Router(Router::new(on.clone(), table)));
                (stage, outputs, Effect::Route { on }, queue)
            }
            StageConfig::JsonSchema {
                schema,
                next,
                queue,
            } => {
                let loaded = load_schema(raw, &format!("{path}.schema"), base, &schema);
                let outputs = resolve_next(raw, names, &path, &next);
                let stage = loaded
                    .filter(|_| !outputs.is_empty())
                    .map(Stage::JsonSchema);
                (stage, outputs, Effect::Validate, queue)
            }
            StageConfig::Normalize {
                by,
                formats,
                detect,
                next,
                queue,
            } => {
                let (normalize, output) = compile_normalize(raw, &path, base, by, &formats, detect);
                let outputs = resolve_next(raw, names, &path, &next);
                let stage = normalize
                    .filter(|_| !outputs.is_empty())
                    .map(Stage::Normalize);
                (stage, outputs, Effect::Normalize(output), queue)
            }
        };
        if queue == 0 {
            raw.error(
                &format!("{path}.queue"),
                "must be at least 1",
                Some("the input channel holds this many messages; 1024 is the default".into()),
            );
        }
        let targets: Vec<NodeRef> = outputs.iter().map(|(_, n)| *n).collect();
        plans.push(stage.filter(|_| queue > 0).map(|stage| StagePlan {
            name: name.clone(),
            stage,
            outputs: targets,
            queue,
        }));
        nodes.push(Node {
            path,
            me: NodeRef::Stage(i),
            outputs,
            effect,
        });
    }
    (plans, nodes)
}

fn resolve_next(
    raw: &mut RawPipeline,
    names: &Names,
    path: &str,
    next: &str,
) -> Vec<(String, NodeRef)> {
    let next_path = format!("{path}.next");
    names
        .resolve(raw, &next_path, next)
        .map(|n| vec![(next_path, n)])
        .unwrap_or_default()
}

fn load_schema(raw: &mut RawPipeline, path: &str, base: &Path, file: &str) -> Option<JsonSchema> {
    let full = base.join(file);
    match JsonSchema::load(&full) {
        Ok(schema) => Some(schema),
        Err(e) => {
            raw.error(
                path,
                e.to_string(),
                Some(format!(
                    "schema paths are relative to the pipeline file's folder ({})",
                    base.display()
                )),
            );
            None
        }
    }
}

fn compile_normalize(
    raw: &mut RawPipeline,
    path: &str,
    base: &Path,
    by: String,
    formats: &indexmap::IndexMap<String, crate::config::model::FormatConfig>,
    detect: Vec<String>,
) -> (Option<Normalize>, Option<Output>) {
    if formats.is_empty() {
        raw.error(
            &format!("{path}.formats"),
            "no formats",
            Some("add `formats: { v1: { format: v1, schema: ../schemas/telem.v1.json } }`".into()),
        );
        return (None, None);
    }
    let mut specs = Vec::new();
    let mut output: Option<Output> = None;
    let mut ok = true;
    for (selector, fc) in formats {
        let fpath = format!("{path}.formats.{selector}");
        let Some(format) = Format::from_name(&fc.format) else {
            ok = false;
            let hint = suggest(&fc.format, &Format::ALL.map(Format::name));
            raw.error(
                &format!("{fpath}.format"),
                format!("unknown format {:?}", fc.format),
                Some(hint),
            );
            continue;
        };
        match output {
            Some(o) if o != format.output() => {
                ok = false;
                raw.error(
                    &format!("{fpath}.format"),
                    format!(
                        "format {:?} produces {} but the stage's other formats produce {}",
                        fc.format,
                        describe(format.output()),
                        describe(o)
                    ),
                    Some(
                        "put telemetry and acknowledgement formats in separate normalize stages"
                            .into(),
                    ),
                );
            }
            _ => output = Some(format.output()),
        }
        match load_schema(raw, &format!("{fpath}.schema"), base, &fc.schema) {
            Some(schema) => specs.push(FormatSpec {
                selector: selector.clone(),
                format,
                schema,
            }),
            None => ok = false,
        }
    }
    for (i, d) in detect.iter().enumerate() {
        if !formats.contains_key(d) {
            ok = false;
            raw.error(
                &format!("{path}.detect[{i}]"),
                format!("{d:?} is not one of this stage's formats"),
                did_you_mean(d, formats.keys().map(String::as_str)),
            );
        }
    }
    let stage = ok.then(|| Normalize::new(by, specs, detect));
    (stage, output)
}

/// What a normalize output is, in words, for error messages.
pub(super) fn describe(output: Output) -> &'static str {
    match output {
        Output::Measures => "telemetry rows",
        Output::Ack => "acknowledgement rows",
    }
}
