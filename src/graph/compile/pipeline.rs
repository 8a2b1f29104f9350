//! The compiler's entry point: load, resolve, build, check, and return
//! either a complete plan or every error found.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use crate::config::error::{suggest, ConfigError, ConfigErrors};
use crate::config::load::{load, RawPipeline};
use crate::graph::plan::{DatabasePlan, NodeRef, Plan};
use crate::secret::Secret;
use crate::sink::postgres::kind::SinkKind;

use super::checks::{self, Node};
use super::{lints, sinks, source, stages};

/// Compiles a pipeline file, reading `${VAR}`s from the process environment.
pub fn compile(file: &Path) -> Result<Plan, ConfigErrors> {
    compile_with_env(file, &|name| std::env::var(name).ok())
}

/// Compiles a pipeline file with `env` as the environment: tests and tools
/// pass their own, so nothing depends on process-global state.
pub fn compile_with_env(
    file: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Plan, ConfigErrors> {
    let mut raw = load(file, env);
    let names = Names::new(&mut raw);
    let base = file.parent().unwrap_or(Path::new("."));

    let sink_plans = sinks::compile(&mut raw);
    let (stage_plans, mut nodes) = stages::compile(&mut raw, &names, base);
    let source = source::compile(&mut raw, &names);
    for (i, sink) in raw.sinks.keys().enumerate() {
        let kind = sink_plans[i].as_ref().map(|s| s.kind);
        nodes.push(Node::sink(format!("sinks.{sink}"), NodeRef::Sink(i), kind));
    }
    let dead_letter = find_dead_letter(&mut raw, &sink_plans);
    let database = compile_database(&mut raw);
    let metrics_addr = compile_metrics_addr(&mut raw);
    let mut warnings = checks::check(&mut raw, &nodes, source.as_ref());
    if let (true, Some(source)) = (raw.errors.is_empty(), &source) {
        warnings.extend(lints::lint(&raw, base, source));
    }

    let mut errors = raw.errors;
    if !errors.is_empty() {
        errors.sort_by_key(|e| e.location.map_or((usize::MAX, 0), |l| (l.line, l.column)));
        return Err(ConfigErrors(errors));
    }
    // No errors: every part compiled. A `None` here would be a compiler bug
    // that failed to report an error, so report it as one.
    let incomplete = || {
        ConfigErrors(vec![ConfigError {
            file: file.to_path_buf(),
            location: None,
            path: String::new(),
            message: "internal error: a section failed without an error message".into(),
            hint: Some("please report this with the pipeline file".into()),
        }])
    };
    Ok(Plan {
        file: file.to_path_buf(),
        source: source.ok_or_else(incomplete)?,
        stages: stage_plans
            .into_iter()
            .collect::<Option<_>>()
            .ok_or_else(incomplete)?,
        sinks: sink_plans
            .into_iter()
            .collect::<Option<_>>()
            .ok_or_else(incomplete)?,
        dead_letter: dead_letter.ok_or_else(incomplete)?,
        database: database.ok_or_else(incomplete)?,
        shutdown_timeout: Duration::from_secs(raw.runtime.shutdown_timeout_secs),
        metrics_addr: metrics_addr.ok_or_else(incomplete)?,
        worker_threads: raw.runtime.worker_threads,
        warnings,
    })
}

/// Every stage and sink name, for resolving references.
pub(super) struct Names {
    map: HashMap<String, NodeRef>,
}

impl Names {
    fn new(raw: &mut RawPipeline) -> Names {
        let mut map = HashMap::new();
        for (i, name) in raw.stages.keys().enumerate() {
            map.insert(name.clone(), NodeRef::Stage(i));
        }
        let mut clashes = Vec::new();
        for (i, name) in raw.sinks.keys().enumerate() {
            if map.insert(name.clone(), NodeRef::Sink(i)).is_some() {
                clashes.push(name.clone());
            }
        }
        for name in clashes {
            raw.error(
                &format!("sinks.{name}"),
                format!("{name:?} is both a stage and a sink"),
                Some("stages and sinks share one namespace; rename one of them".into()),
            );
        }
        Names { map }
    }

    /// Resolves a reference written at `path`, reporting a dangling one.
    pub(super) fn resolve(&self, raw: &mut RawPipeline, path: &str, name: &str) -> Option<NodeRef> {
        if let Some(node) = self.map.get(name) {
            return Some(*node);
        }
        if raw.names_unknown || raw.unloaded.iter().any(|n| n == name) {
            return None; // declared, but broken: its own error says why
        }
        let known: Vec<&str> = self.map.keys().map(String::as_str).collect();
        let hint = suggest(name, &known);
        raw.error(path, format!("no stage or sink named {name:?}"), Some(hint));
        None
    }
}

fn find_dead_letter(
    raw: &mut RawPipeline,
    sinks: &[Option<crate::graph::plan::SinkPlan>],
) -> Option<usize> {
    let found: Vec<usize> = sinks
        .iter()
        .enumerate()
        .filter(|(_, s)| s.as_ref().is_some_and(|s| s.kind == SinkKind::DeadLetter))
        .map(|(i, _)| i)
        .collect();
    match found.as_slice() {
        [one] => Some(*one),
        [] => {
            if !raw.sinks.is_empty() && sinks.iter().all(Option::is_some) {
                raw.error(
                    "sinks",
                    "no dead_letter sink: rejected messages would have nowhere to go",
                    Some("add a sink with `type: dead_letter` (table public.ingest_errors)".into()),
                );
            }
            None
        }
        [_, second, ..] => {
            let name = raw.sinks.get_index(*second).map(|(n, _)| n.clone());
            raw.error(
                &format!("sinks.{}", name.unwrap_or_default()),
                "more than one dead_letter sink",
                Some("keep exactly one sink with `type: dead_letter`".into()),
            );
            None
        }
    }
}

fn compile_metrics_addr(raw: &mut RawPipeline) -> Option<SocketAddr> {
    let host = &raw.runtime.metrics_host;
    match host.parse::<IpAddr>() {
        Ok(ip) => Some(SocketAddr::new(ip, raw.runtime.metrics_port)),
        Err(_) => {
            let message = format!("{host:?} is not an IP address");
            raw.error(
                "runtime.metrics_host",
                message,
                Some("use 0.0.0.0 (all interfaces) or 127.0.0.1 (this machine only)".into()),
            );
            None
        }
    }
}

fn compile_database(raw: &mut RawPipeline) -> Option<DatabasePlan> {
    let db = raw.database.clone()?;
    let mut ok = true;
    match url::Url::parse(&db.url) {
        Ok(u) if matches!(u.scheme(), "postgres" | "postgresql") => {}
        Ok(u) => {
            ok = false;
            raw.error(
                "database.url",
                format!("unsupported scheme {:?}", u.scheme()),
                Some("use postgres://user@host:5432/database".into()),
            );
        }
        Err(e) => {
            ok = false;
            raw.error(
                "database.url",
                format!("not a URL: {e}"),
                Some("use postgres://user@host:5432/database".into()),
            );
        }
    }
    if db.pool_max == 0 {
        ok = false;
        raw.error(
            "database.pool_max",
            "must be at least 1",
            Some("sinks need a connection each to write in parallel; 8 is a good start".into()),
        );
    }
    if !crate::sink::postgres::table::is_identifier(&db.role) {
        ok = false;
        raw.error(
            "database.role",
            format!("{:?} is not a plain SQL role name", db.role),
            Some("lower-case letters, digits and _".into()),
        );
    }
    ok.then(|| DatabasePlan {
        url: Secret::new(db.url),
        pool_max: db.pool_max,
        role: db.role,
        create_if_missing: db.create_if_missing,
        migrate: db.migrate,
        dlq_retention: (db.dlq_retention_days > 0)
            .then(|| Duration::from_secs(u64::from(db.dlq_retention_days) * 86_400)),
    })
}
