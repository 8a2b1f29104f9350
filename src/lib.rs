//! TrakSense ingest: a declarative MQTT → PostgreSQL pipeline.
//!
//! A pipeline file ([`config`]) is compiled into a plan ([`graph::compile`]),
//! which runs as bounded tokio stages ([`graph::run`]): the MQTT [`source`]
//! hands [`envelope::Envelope`]s through the [`stage`]s to the [`sink`]s, and
//! a message is acknowledged to the broker ([`delivery`]) only after what it
//! became is committed.

#![warn(missing_docs)]

pub mod backoff;
pub mod config;
pub mod delivery;
pub mod envelope;
pub mod graph;
pub mod secret;
pub mod sink;
pub mod source;
pub mod stage;
pub mod telemetry;
pub mod tools;
