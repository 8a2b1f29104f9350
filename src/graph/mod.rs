//! The pipeline as a graph: `compile` turns a pipeline file into a checked
//! [`plan::Plan`]; `run` wires it into bounded tokio tasks and drains it.

pub mod compile;
pub mod plan;
pub mod run;
mod stage_task;
mod watch;
