//! What the runner's own code costs per message, without broker, database or
//! task switches: the load generator's exact payloads go through the shipped
//! pipeline's admission and stages (the code the runner runs, via
//! `tools::dry_run::walk`), then through the `ts_measure` sink's column
//! building and sqlx's parameter encoding, in batches of 500 messages.
//! Prints nanoseconds per message and per point for each step.
//!
//! `cargo run --release --example stage_cost [-- POINTS...]` (default: 1 10)
//!
//! Repeatable figures (instructions, not seconds, whatever else the machine
//! does): `STAGE_COST_POINTS=20000 valgrind --tool=callgrind
//! target/release/examples/stage_cost 10`, then `callgrind_annotate`.

#[allow(dead_code)]
#[path = "loadgen/shape.rs"]
mod shape;

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use traksense_ingest::envelope::Envelope;
use traksense_ingest::graph::compile::compile_with_env;
use traksense_ingest::sink::postgres::table::TableName;
use traksense_ingest::sink::postgres::timeseries::{self, Columns};
use traksense_ingest::tools::dry_run::{walk, End, Walk};

/// The runner's allocator, so allocation costs what it costs there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Points per size, so that each takes about a second; `STAGE_COST_POINTS`
/// sets another (e.g. 20 000 under callgrind).
const POINTS_PER_RUN: u64 = 400_000;
/// Messages per sink batch (the runner's average at 1 point/msg is ~500–800).
const BATCH: usize = 500;

fn main() {
    let sizes: Vec<u32> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("POINTS must be numbers"))
        .collect();
    let sizes = if sizes.is_empty() { vec![1, 10] } else { sizes };
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/traksense.yaml");
    let plan = compile_with_env(&file, &|_| None).expect("the shipped pipeline compiles");
    let sql = timeseries::sql(&TableName::parse("public.ts_measure").expect("name"), false);
    println!("| points/msg | messages | stages ns/msg | sink columns + encode ns/msg | total ns/msg | ns/point |");
    println!("|---|---|---|---|---|---|");
    let per_run = std::env::var("STAGE_COST_POINTS")
        .map(|v| v.parse().expect("STAGE_COST_POINTS must be a number"))
        .unwrap_or(POINTS_PER_RUN);
    for points in sizes {
        let messages = (per_run / u64::from(points)).max(1);
        let load = load(points, messages);
        // Warm up allocator and caches with a tenth of the load.
        let _ = stages(&plan, &load[..load.len() / 10]);
        let start = Instant::now();
        let envelopes = stages(&plan, &load);
        let staged = start.elapsed();
        let start = Instant::now();
        let mut encoded = 0;
        for batch in envelopes.chunks(BATCH) {
            let columns = Columns::of(batch);
            encoded += columns.len();
            let _ = std::hint::black_box(columns.bind(sqlx::query(&sql)));
        }
        let sunk = start.elapsed();
        assert_eq!(
            encoded as u64,
            messages * u64::from(points),
            "every point encoded"
        );
        let start = Instant::now();
        drop(envelopes);
        let dropped = start.elapsed();
        let per = |d: Duration| d.as_nanos() as f64 / messages as f64;
        let total = staged + sunk + dropped;
        println!(
            "| {points} | {messages} | {:.0} | {:.0} | {:.0} (drop {:.0}) | {:.0} |",
            per(staged),
            per(sunk),
            per(total),
            per(dropped),
            per(total) / f64::from(points)
        );
    }
}

/// The load generator's messages: (topic, payload), 4 tenants × 25 devices.
fn load(points: u32, messages: u64) -> Vec<(String, Bytes)> {
    let shape = shape::Shape {
        messages,
        points,
        tenants: 4,
        devices: 25,
        connections: 1,
        invalid: 0,
        dup_acks: 0,
        run_id: "cost".into(),
    }
    .validated()
    .expect("shape");
    let topics = shape.telem_topics();
    let mut clocks = shape::Clocks::new(shape.device_count());
    (0..messages)
        .map(|i| {
            let device = shape.device_of(i);
            let payload = shape.telemetry(i, clocks.stamp(device));
            (topics[device as usize].clone(), Bytes::from(payload))
        })
        .collect()
}

/// Every message through admission and the stages; all must reach a sink.
fn stages(plan: &traksense_ingest::graph::plan::Plan, load: &[(String, Bytes)]) -> Vec<Envelope> {
    load.iter()
        .map(
            |(topic, payload)| match walk(plan, topic, payload.clone()) {
                Ok(Walk {
                    end: End::Sink(_, envelope),
                    ..
                }) => envelope,
                other => panic!("a load message did not reach ts_measure: {other:?}"),
            },
        )
        .collect()
}
