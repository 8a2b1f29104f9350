//! Load generator for the ingest benchmark (issue 6; driven by `bench/run`).
//!
//! What it is for: putting a known, checkable load on the runner, and
//! measuring the two ceilings the runner is compared with, all with the same
//! messages. Four things, picked by flags:
//!
//! - **publish** (default): TrakSense v1 telemetry at QoS 1 over MQTT 5,
//!   as fast as the broker acknowledges or at `--rate` messages/s, from
//!   `--connections` clients; waits for every PUBACK and prints messages/s.
//! - **`--wait-metrics URL`** (with publish): then waits until the runner's
//!   `ingest_points_total` reaches every valid point, confirms the row count
//!   with SQL (`--database-url`), and prints points/s from the first publish
//!   to the commit of the last row, the runner's latency histogram, and how
//!   many of the runner's statements PostgreSQL ran at once.
//! - **`--subscribe`**: the Mosquitto ceiling: a QoS 1 subscriber on
//!   `traksense/#` counts what the broker delivers of the same load;
//!   messages/s from the first publish to the last delivery.
//! - **`--copy DATABASE_URL`**: the PostgreSQL ceiling: the same rows (the
//!   ones the runner would write for this load) by `COPY … FROM STDIN` into
//!   `ts_measure`; rows/s from the start of COPY to its commit.
//!
//! The load: message `i` (0-based) comes from device `i mod (T×D)`, topic
//! `traksense/tenant{t}/site1/dev{d}/telem`; its `ts` is the publish time
//! (RFC 3339, milliseconds, `Z`), moved 1 ms past the device's previous `ts`
//! when needed, so that no two rows share (tenant, device, point, ts) and
//! the dedup index never merges two of our rows; `--points P` points named
//! `p0…` with the unique value `i×P + j + 0.5`, so a table can be checked for
//! loss (`count(*)`) and duplicates (`count(distinct v_num)`). `--invalid K`
//! adds K payloads that must become dead letters; `--dup-acks K` adds K
//! command ACKs, each published twice, that must leave K `cmd_ack` rows.
//!
//! Output: progress and a summary on stderr; one `RESULT key=value …` line
//! on stdout for scripts. Exit status 1 when anything is missing, refused or
//! late. Every wait is bounded by `--timeout-secs`.
//!
//! ```sh
//! cargo run --release --example loadgen -- --url mqtt://127.0.0.1:1883 \
//!     --messages 100000 --points 10 --tenants 4 --devices 25 --connections 2
//! ```

#[path = "loadgen/activity.rs"]
mod activity;
#[path = "loadgen/copy.rs"]
mod copy;
#[path = "loadgen/extras.rs"]
mod extras;
#[path = "loadgen/metrics.rs"]
mod metrics;
#[path = "loadgen/publish.rs"]
mod publish;
#[path = "loadgen/report.rs"]
mod report;
#[path = "loadgen/shape.rs"]
mod shape;
#[path = "loadgen/subscribe.rs"]
mod subscribe;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tokio::time::Instant;

use report::Report;
use shape::Shape;

/// Command line; see the module doc for what each mode measures.
#[derive(Parser, Debug)]
#[command(about = "TrakSense load generator and ceiling probe (bench/run drives it)")]
struct Args {
    /// Broker URL (`mqtt://host:port`).
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    url: String,
    /// Telemetry messages to publish (or whose rows to COPY).
    #[arg(long, default_value_t = 10_000)]
    messages: u64,
    /// Points per message.
    #[arg(long, default_value_t = 1)]
    points: u32,
    /// Tenants (`tenant0…`).
    #[arg(long, default_value_t = 4)]
    tenants: u32,
    /// Devices per tenant (`dev0…`).
    #[arg(long, default_value_t = 25)]
    devices: u32,
    /// Parallel client connections (or COPY connections); each owns a share
    /// of the devices.
    #[arg(long, default_value_t = 2)]
    connections: u32,
    /// Fixed rate in messages/s across all connections; as fast as possible
    /// when absent.
    #[arg(long)]
    rate: Option<f64>,
    /// Extra invalid payloads (parse, schema, timestamp, unknown schema).
    #[arg(long, default_value_t = 0)]
    invalid: u64,
    /// Extra command ACKs, each published twice.
    #[arg(long, default_value_t = 0)]
    dup_acks: u64,
    /// Measure the broker alone: a subscriber counts the deliveries.
    #[arg(long, conflicts_with_all = ["copy", "wait_metrics"])]
    subscribe: bool,
    /// Measure PostgreSQL alone: COPY the load's rows into `ts_measure` of
    /// this database instead of publishing.
    #[arg(long, value_name = "DATABASE_URL", conflicts_with = "wait_metrics")]
    copy: Option<String>,
    /// After publishing, wait until this `/metrics` URL reports every valid
    /// point committed (`ingest_points_total`).
    #[arg(long, value_name = "URL")]
    wait_metrics: Option<String>,
    /// Database the runner writes to: its `ts_measure` row count confirms
    /// the commit (with `--wait-metrics`).
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Upper bound on the whole run.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
    /// Prefix of MQTT client ids and command ids (unique per run).
    #[arg(long)]
    run_id: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("loadgen: cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(report) => {
            report.print();
            if report.failed() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the selected mode; errors are set-up failures (bad arguments,
/// connection refused), while shortfalls are recorded in the report.
async fn run(args: Args) -> Result<Report, String> {
    let run_id = args
        .run_id
        .clone()
        .unwrap_or_else(|| format!("loadgen-{}", std::process::id()));
    let shape = Arc::new(
        Shape {
            messages: args.messages,
            points: args.points,
            tenants: args.tenants,
            devices: args.devices,
            connections: args.connections,
            invalid: args.invalid,
            dup_acks: args.dup_acks,
            run_id,
        }
        .validated()?,
    );
    if let Some(rate) = args.rate {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(format!("--rate {rate}: must be a positive number"));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let mut report = Report::new(&shape);

    if let Some(database_url) = &args.copy {
        report.mode("copy");
        copy::run(&shape, database_url, deadline, &mut report).await?;
        return Ok(report);
    }

    let subscriber = if args.subscribe {
        report.mode("subscribe");
        Some(subscribe::Subscriber::start(&args.url, &shape, deadline).await?)
    } else {
        report.mode(if args.wait_metrics.is_some() {
            "e2e"
        } else {
            "publish"
        });
        None
    };

    // With the runner's database: how many of its statements run at once.
    let activity = match (&args.wait_metrics, &args.database_url) {
        (Some(_), Some(url)) => Some(activity::Activity::start(url, deadline).await?),
        _ => None,
    };
    let published = publish::run(&args.url, &shape, args.rate, deadline).await?;
    let first_publish = published.first_publish;
    published.record(&shape, &mut report);

    if let Some(subscriber) = subscriber {
        subscriber
            .finish(first_publish, deadline, &mut report)
            .await;
    }
    if let Some(url) = &args.wait_metrics {
        metrics::wait_committed(
            url,
            args.database_url.as_deref(),
            &shape,
            first_publish,
            deadline,
            activity,
            &mut report,
        )
        .await;
    }
    report.loadgen_cpu();
    Ok(report)
}
