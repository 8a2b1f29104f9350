//! PostgreSQL sinks: `ts_measure` rows, `cmd_ack` upserts and
//! `ingest_errors` dead letters, written in batches, one transaction per
//! tenant, under row-level security.

pub mod ack_upsert;
pub mod batch;
pub mod dead_letter;
pub mod dedup;
pub mod error;
pub mod kind;
pub mod setup;
pub mod table;
pub mod tenant_tx;
pub mod timeseries;
pub mod writer;
