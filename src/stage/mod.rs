//! Stages: the steps between the source and the sinks. Each takes an
//! envelope and either passes it on (to one of its outputs) or rejects it.
//! A stage knows nothing of the stages around it, of MQTT or of PostgreSQL.

pub mod json_schema;
pub mod normalize;
pub mod parse;
pub mod router;
pub mod step;
