//! Shared helpers for the integration tests: a database per test, a broker per
//! test, MQTT clients that wait for acknowledgements, a TCP proxy that cuts the
//! network on demand, the `runner` binary as a child process, and bounded
//! waiting.
//!
//! Tests start the real thing (STYLE.md, habit 11): PostgreSQL and Mosquitto
//! on loopback, as `scripts/services.sh` guarantees. Each integration test
//! binary includes this folder with `mod support;`, so this file only lists the
//! modules and re-exports the types tests name most.

// Every test binary compiles its own copy of this module and uses only part of
// it; without these, each binary would warn about the helpers (dead_code) and
// re-exports (unused_imports) it leaves unused.
#![allow(dead_code, unused_imports)]

pub mod broker;
pub mod cli;
pub mod db;
pub mod faults;
pub mod mqtt;
pub mod pipeline;
pub mod prom;
pub mod proxy;
pub mod runner;
pub mod wait;
pub mod writes;

pub use broker::TestBroker;
pub use db::TestDb;
pub use mqtt::{Publisher, Subscriber};
pub use proxy::TcpProxy;
pub use runner::RunnerProcess;
pub use wait::eventually;
