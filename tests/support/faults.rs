//! What the fault tests share (`tests/faults_database.rs`,
//! `tests/faults_broker.rs`, `tests/faults_runner.rs`): their constants, the
//! runner's environment and its stop line, a paced background publisher, the
//! exact SQL counts, and ways to poke a `TestBroker` (its pid, a forced save,
//! its log). Why a module: the three files differ only in what they break, so
//! the method below is written once and every fault test follows it.
//!
//! Nothing lost, nothing doubled, under faults (issue 3, "Tests that must
//! exist", items 1–6), plus two tests for runner bugs found while writing
//! them: PUBACKs of a lost connection sent on the next one, and a SIGTERM
//! not seen during a database outage.
//!
//! Every test has its own Mosquitto (persistence on) and its own database,
//! runs the `runner` binary as a child process (except the poison-batch test,
//! where the in-process pipeline is equivalent and simpler), publishes
//! messages that each carry a unique id — message `i` has `ts` = base + `i`
//! ms and its one point's value is `i` — and asserts exact counts in SQL:
//! `count(*)`, `count(distinct ts)` and `count(distinct v_num)` all equal to
//! the number of messages, so a loss or a duplicate shows.
//!
//! Faults land mid-stream: a background publisher sends paced chunks (a
//! device fleet, not a burst), the test waits until the runner has committed
//! some of them, breaks something, and only then starts publishing the rest,
//! so the fault always meets part of the stream.
//! Small batches (`INGEST_BATCH_MS=20`, `INGEST_BATCH_SIZE=500`) make many
//! commits happen mid-stream. Every wait is bounded.

use std::fs;
use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::{eventually, Publisher, RunnerProcess, TestBroker, TestDb};

/// The binary under test; Cargo provides its path to integration tests only.
pub const RUNNER: &str = env!("CARGO_BIN_EXE_runner");

/// Where the shared PostgreSQL listens (see `scripts/services.sh`).
pub const POSTGRES: &str = "127.0.0.1:5432";

/// Every test's device: one tenant, one device, one point name, so that the
/// unique key `(tenant, device, point, ts)` is unique exactly when `ts` is.
pub const TENANT: &str = "faults";
pub const TOPIC: &str = "traksense/faults/site1/dev1/telem";

/// Messages in each fault test's stream.
pub const N: usize = 3000;

/// Messages `0..FIRST` are published before the fault, in the background;
/// `FIRST..N` only once the fault is in place, so that part of the stream
/// always meets the fault, however the machine schedules the test.
pub const FIRST: usize = 1000;

/// Rows the runner must have committed before a fault is injected, so the
/// fault lands mid-stream (and not before the runner got going).
pub const FAULT_AFTER_ROWS: i64 = 300;

/// The background publisher's pace: chunks of this many messages...
pub const CHUNK: usize = 50;
/// ...with this pause after each, about 4 000 messages/s on this machine.
pub const PACE: Duration = Duration::from_millis(10);

/// Startup (create database, migrate, connect, subscribe) takes 1–2 s alone
/// and much more when the suite runs four tests at a time on two cores.
pub const STARTUP: Duration = Duration::from_secs(60);

/// Bound on waiting for all rows; generous, as it is only a bound.
pub const ROWS_TIMEOUT: Duration = Duration::from_secs(60);

/// The pipeline's `runtime.shutdown_timeout_secs`; a SIGTERM must end the
/// process within it.
/// The runner's drain timeout in these tests (`INGEST_SHUTDOWN_SECS`); the
/// shipped default is 30 s.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Message `i`: `ts` = 2025-10-07T00:00:00Z + `i` ms, one point of value `i`.
pub fn message(i: usize) -> String {
    let (h, m, s, ms) = (i / 3_600_000, i / 60_000 % 60, i / 1000 % 60, i % 1000);
    format!(
        r#"{{"schema":"v1","ts":"2025-10-07T{h:02}:{m:02}:{s:02}.{ms:03}Z","points":[{{"name":"seq","v":{i}}}]}}"#
    )
}

/// The runner's environment for a test: its broker and database, a fixed
/// client id (the persistent session), small batches and a small pool.
/// `application_name` lets a test find the runner's backends in
/// `pg_stat_activity`.
pub fn runner_env(
    mqtt_url: &str,
    database_url: &str,
    client_id: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("MQTT_URL", mqtt_url.to_owned()),
        (
            "DATABASE_URL",
            format!("{database_url}?application_name={client_id}"),
        ),
        ("MQTT_CLIENT_ID", client_id.to_owned()),
        ("INGEST_BATCH_MS", "20".to_owned()),
        ("INGEST_BATCH_SIZE", "500".to_owned()),
        ("DB_POOL_MAX", "3".to_owned()),
        ("INGEST_SHUTDOWN_SECS", DRAIN_TIMEOUT.as_secs().to_string()),
    ]
}

/// Starts the runner and waits until it has subscribed: from then on its
/// persistent session holds every message published, even while it is down.
pub async fn start_runner(env: &[(&'static str, String)]) -> RunnerProcess {
    let mut runner = RunnerProcess::start(Path::new(RUNNER), env.iter().cloned());
    runner.wait_for_log("subscribed", STARTUP).await;
    runner
}

/// The runner's `mqtt source stopped` line, as numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    pub received: u64,
    pub acknowledged: u64,
    /// `received - acknowledged`: includes messages of a lost connection,
    /// committed but redelivered on the next one.
    pub unacknowledged: u64,
    /// Messages the runner still tracked at stop (taken, not yet settled).
    pub in_flight: u64,
}

/// Parses the last `mqtt source stopped received=… acknowledged=…
/// unacknowledged=…` line; panics with the log if there is none.
pub fn stopped(log: &str) -> Stopped {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("mqtt source stopped"))
        .unwrap_or_else(|| panic!("no `mqtt source stopped` line in the log:\n{log}"));
    let field = |key: &str| -> u64 {
        line.split_whitespace()
            .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("no {key}=N in {line:?}"))
    };
    Stopped {
        received: field("received"),
        acknowledged: field("acknowledged"),
        unacknowledged: field("unacknowledged"),
        in_flight: field("in_flight"),
    }
}

/// SIGTERM, then waits for exit 0 within the drain timeout; returns the stop
/// line and how long the stop took.
pub async fn stop_gracefully(runner: &mut RunnerProcess) -> (Stopped, Duration) {
    let asked = Instant::now();
    runner.sigterm();
    wait_stopped(runner, asked).await
}

/// Waits for exit 0 within the drain timeout of a SIGTERM sent at `asked`;
/// returns the stop line and how long the stop took.
pub async fn wait_stopped(runner: &mut RunnerProcess, asked: Instant) -> (Stopped, Duration) {
    let status = runner.wait(DRAIN_TIMEOUT + Duration::from_secs(10)).await;
    let took = asked.elapsed();
    let log = runner.log();
    assert!(
        status.success(),
        "exit status {status} after SIGTERM:\n{log}"
    );
    assert!(
        took < DRAIN_TIMEOUT,
        "stopping took {took:?}, over the drain timeout"
    );
    assert!(log.contains("shutdown requested"), "{log}");
    assert_no_bug_lines(&log);
    (stopped(&log), took)
}

/// The runner logs `BUG` when a message leaves the pipeline uncommitted.
pub fn assert_no_bug_lines(log: &str) {
    let bugs: Vec<&str> = log.lines().filter(|l| l.contains("BUG")).collect();
    assert!(
        bugs.is_empty(),
        "the runner reported bugs:\n{}",
        bugs.join("\n")
    );
}

/// Rows in `ts_measure`.
pub async fn rows(db: &TestDb) -> i64 {
    db.count("select count(*) from ts_measure").await
}

/// Waits until `ts_measure` holds at least `n` rows; returns the count.
pub async fn wait_rows_at_least(db: &TestDb, n: i64, timeout: Duration) -> i64 {
    eventually(&format!("at least {n} rows"), timeout, || async {
        let got = rows(db).await;
        if got >= n {
            Ok(got)
        } else {
            Err(got)
        }
    })
    .await
}

/// Asserts that `ts_measure` holds messages `0..n` each exactly once, and
/// that nothing was dead-lettered.
pub async fn assert_each_message_once(db: &TestDb, n: usize) {
    let n = n as i64;
    let (total, distinct_ts, distinct_v, min_v, max_v) = db
        .fetch_all::<(i64, i64, i64, i64, i64)>(
            "select count(*), count(distinct ts), count(distinct v_num), \
                    coalesce(min(v_num), -1)::bigint, coalesce(max(v_num), -1)::bigint \
             from ts_measure",
        )
        .await[0];
    assert_eq!(
        (total, distinct_ts, distinct_v, min_v, max_v),
        (n, n, n, 0, n - 1),
        "(rows, distinct ts, distinct values, min, max) in ts_measure"
    );
    let dead = db.count("select count(*) from ingest_errors").await;
    assert_eq!(dead, 0, "dead letters");
}

/// Waits until the database has no session left from the runner whose
/// client id (and `application_name`) is `client_id`: after a SIGKILL or a
/// cut, any transaction it had open is then either committed or rolled back.
pub async fn wait_backends_gone(db: &TestDb, client_id: &str) {
    let sql = format!(
        "select count(*) from pg_stat_activity \
         where datname = current_database() and application_name = '{client_id}'"
    );
    eventually(
        "the killed runner's database sessions to end",
        Duration::from_secs(30),
        || async {
            let n = db.count(&sql).await;
            if n == 0 {
                Ok(())
            } else {
                Err(n)
            }
        },
    )
    .await;
}

/// A device fleet's stream: messages in `range`, published in the background
/// in paced chunks, each chunk acknowledged by the broker before the next.
pub struct Stream {
    /// Messages the broker has acknowledged so far.
    published: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Stream {
    pub fn start(publisher: Arc<Publisher>, range: Range<usize>) -> Stream {
        let published = Arc::new(AtomicUsize::new(0));
        let counter = published.clone();
        let task = tokio::spawn(async move {
            let ids: Vec<usize> = range.collect();
            for chunk in ids.chunks(CHUNK) {
                publisher
                    .publish_many(chunk.iter().map(|&i| (TOPIC, message(i))))
                    .await;
                counter.fetch_add(chunk.len(), Ordering::SeqCst);
                tokio::time::sleep(PACE).await;
            }
        });
        Stream { published, task }
    }

    pub fn published(&self) -> usize {
        self.published.load(Ordering::SeqCst)
    }

    /// Waits until every message is acknowledged by the broker.
    pub async fn finish(self) {
        tokio::time::timeout(Duration::from_secs(90), self.task)
            .await
            .expect("the stream is published within 90 s")
            .expect("the publishing task does not panic");
    }
}

/// The pid of a `TestBroker`'s mosquitto, found by its private config path
/// (unique to this broker), since `TestBroker` does not expose it.
pub fn broker_pid(broker: &TestBroker) -> u32 {
    let config = broker.dir().join("mosquitto.conf");
    let config = config.to_string_lossy();
    fs::read_dir("/proc")
        .expect("/proc is readable")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .map(|cmdline| {
                    cmdline
                        .split(|&b| b == 0)
                        .any(|arg| arg == config.as_bytes())
                })
                .unwrap_or(false)
        })
        .unwrap_or_else(|| panic!("no mosquitto process running with {config}"))
}

/// Makes the broker write its persistence file now (SIGUSR1) and waits
/// until the new file is in place (mosquitto writes `mosquitto.db.new`, then
/// renames it over `mosquitto.db`, so a new inode means a complete save).
pub async fn save_broker(broker: &TestBroker) {
    let file = broker.dir().join("mosquitto.db");
    let identity = || fs::metadata(&file).ok().map(|m| (m.ino(), m.mtime_nsec()));
    let before = identity();
    let pid = broker_pid(broker).to_string();
    let sent = Command::new("kill").args(["-USR1", &pid]).status();
    assert!(
        matches!(sent, Ok(status) if status.success()),
        "kill -USR1 {pid}: {sent:?}"
    );
    eventually(
        "mosquitto to save its persistence file",
        Duration::from_secs(10),
        || async {
            let now = identity();
            if now.is_some() && now != before {
                Ok(())
            } else {
                Err(now)
            }
        },
    )
    .await;
}

/// The broker's log lines about `client_id`'s sessions ending, oldest first.
pub fn session_ends(broker: &TestBroker, client_id: &str) -> Vec<String> {
    let client = format!("Client {client_id} ");
    broker
        .log()
        .lines()
        .filter_map(|l| l.split_once(&client).map(|(_, end)| end.to_owned()))
        .collect()
}

/// A `TestBroker` that logs every packet (`log_type all`), so a test can
/// read which packet ids a client acknowledged. `TestBroker` writes its
/// config at start; the extra line takes effect on the restart.
pub fn verbose_broker() -> TestBroker {
    use std::io::Write;
    let mut broker = TestBroker::start();
    let mut config = fs::OpenOptions::new()
        .append(true)
        .open(broker.dir().join("mosquitto.conf"))
        .expect("the broker's config is writable");
    writeln!(config, "log_type all").expect("the broker's config is writable");
    broker.restart();
    broker
}

/// Packet ids that `client_id` acknowledged more than once on its latest
/// connection, from a [`verbose_broker`]'s log. On one connection the broker
/// sends each packet id once until it is acknowledged, so a second PUBACK for
/// an id is an acknowledgement of the same message from an older connection.
pub fn packet_ids_acknowledged_twice_on_last_connection(log: &str, client_id: &str) -> Vec<u16> {
    let connected = format!(" as {client_id} (");
    let lines: Vec<&str> = log.lines().collect();
    let from = lines
        .iter()
        .rposition(|l| l.contains("New client connected from") && l.contains(&connected))
        .unwrap_or(0);
    let puback = format!("Received PUBACK from {client_id} (Mid: ");
    let mut seen = std::collections::HashMap::<u16, usize>::new();
    for line in &lines[from..] {
        let Some(rest) = line.split_once(&puback).map(|(_, rest)| rest) else {
            continue;
        };
        if let Some(mid) = rest.split(',').next().and_then(|m| m.parse().ok()) {
            *seen.entry(mid).or_default() += 1;
        }
    }
    let mut twice: Vec<u16> = seen
        .into_iter()
        .filter(|&(_, n)| n > 1)
        .map(|(mid, _)| mid)
        .collect();
    twice.sort_unstable();
    twice
}
