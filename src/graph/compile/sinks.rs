//! Compiles `sinks:` entries: kind, table name and batch limits.

use std::time::Duration;

use crate::config::error::suggest;
use crate::config::load::RawPipeline;
use crate::graph::plan::{BatchPlan, SinkPlan};
use crate::sink::postgres::kind::SinkKind;
use crate::sink::postgres::table::TableName;

/// One `Option` per `raw.sinks` entry, in order; `None` where it failed.
pub(super) fn compile(raw: &mut RawPipeline) -> Vec<Option<SinkPlan>> {
    let entries: Vec<_> = raw
        .sinks
        .iter()
        .map(|(n, c)| (n.clone(), c.clone()))
        .collect();
    entries
        .into_iter()
        .map(|(name, config)| {
            let path = format!("sinks.{name}");
            let Some(kind) = SinkKind::from_name(&config.kind) else {
                let hint = suggest(&config.kind, &SinkKind::ALL.map(SinkKind::name));
                raw.error(
                    &format!("{path}.type"),
                    format!("unknown sink type {:?}", config.kind),
                    Some(hint),
                );
                return None;
            };
            let table_text = config.table.as_deref().unwrap_or(kind.default_table());
            let table = match TableName::parse(table_text) {
                Ok(t) => Some(t),
                Err(e) => {
                    raw.error(
                        &format!("{path}.table"),
                        e,
                        Some("write schema.table".into()),
                    );
                    None
                }
            };
            let mut ok = table.is_some();
            if config.batch.max_rows == 0 {
                ok = false;
                raw.error(
                    &format!("{path}.batch.max_rows"),
                    "must be at least 1",
                    Some(
                        "a batch is written once it has this many rows; 5000 is the default".into(),
                    ),
                );
            }
            if config.batch.max_ms == 0 {
                ok = false;
                raw.error(
                    &format!("{path}.batch.max_ms"),
                    "must be at least 1",
                    Some("a batch waits at most this long for more rows".into()),
                );
            }
            if config.batch.parallel == 0 {
                ok = false;
                raw.error(
                    &format!("{path}.batch.parallel"),
                    "must be at least 1",
                    None,
                );
            }
            if config.queue == 0 {
                ok = false;
                raw.error(
                    &format!("{path}.queue"),
                    "must be at least 1",
                    Some("the input channel holds this many messages; 1024 is the default".into()),
                );
            }
            let table = table.filter(|_| ok)?;
            Some(SinkPlan {
                name,
                kind,
                table,
                batch: BatchPlan {
                    max_rows: config.batch.max_rows,
                    max_wait: Duration::from_millis(config.batch.max_ms),
                    parallel: config.batch.parallel,
                },
                queue: config.queue,
            })
        })
        .collect()
}
