//! The pipeline-editing tools behind `runner check`, `dry-run`, `test`,
//! `graph` and `schema`: everything a person needs to change a pipeline
//! file with confidence, without a broker or a database.
//!
//! They compile pipelines with the runner's own compiler and push payloads
//! through the runner's own stages ([`crate::stage::step::Stage::process`])
//! and admission ([`crate::source::admit`]), so what they show is what the
//! runner does. Each returns values; the `runner` binary prints them.

pub mod cases;
pub mod check;
pub mod dry_run;
pub mod dry_run_report;
pub mod error;
pub mod graph;
pub mod inputs;
pub mod rows;
pub mod schema;
pub mod table;
pub mod verdict;
