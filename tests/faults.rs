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

mod support;

use std::fs;
use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::db::DeadLetter;
use support::pipeline::TestPipeline;
use support::{eventually, Publisher, RunnerProcess, TcpProxy, TestBroker, TestDb};
use tokio::task::JoinHandle;

/// The binary under test; Cargo provides its path to integration tests only.
const RUNNER: &str = env!("CARGO_BIN_EXE_runner");

/// Where the shared PostgreSQL listens (see `scripts/services.sh`).
const POSTGRES: &str = "127.0.0.1:5432";

/// Every test's device: one tenant, one device, one point name, so that the
/// unique key `(tenant, device, point, ts)` is unique exactly when `ts` is.
const TENANT: &str = "faults";
const TOPIC: &str = "traksense/faults/site1/dev1/telem";

/// Messages in each fault test's stream.
const N: usize = 3000;

/// Messages `0..FIRST` are published before the fault, in the background;
/// `FIRST..N` only once the fault is in place, so that part of the stream
/// always meets the fault, however the machine schedules the test.
const FIRST: usize = 1000;

/// Rows the runner must have committed before a fault is injected, so the
/// fault lands mid-stream (and not before the runner got going).
const FAULT_AFTER_ROWS: i64 = 300;

/// The background publisher's pace: chunks of this many messages...
const CHUNK: usize = 50;
/// ...with this pause after each, about 4 000 messages/s on this machine.
const PACE: Duration = Duration::from_millis(10);

/// Startup (create database, migrate, connect, subscribe) takes 1–2 s alone
/// and much more when the suite runs four tests at a time on two cores.
const STARTUP: Duration = Duration::from_secs(60);

/// Bound on waiting for all rows; generous, as it is only a bound.
const ROWS_TIMEOUT: Duration = Duration::from_secs(60);

/// The pipeline's `runtime.shutdown_timeout_secs`; a SIGTERM must end the
/// process within it.
/// The runner's drain timeout in these tests (`INGEST_SHUTDOWN_SECS`); the
/// shipped default is 30 s.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Message `i`: `ts` = 2025-10-07T00:00:00Z + `i` ms, one point of value `i`.
fn message(i: usize) -> String {
    let (h, m, s, ms) = (i / 3_600_000, i / 60_000 % 60, i / 1000 % 60, i % 1000);
    format!(
        r#"{{"schema":"v1","ts":"2025-10-07T{h:02}:{m:02}:{s:02}.{ms:03}Z","points":[{{"name":"seq","v":{i}}}]}}"#
    )
}

/// The runner's environment for a test: its broker and database, a fixed
/// client id (the persistent session), small batches and a small pool.
/// `application_name` lets a test find the runner's backends in
/// `pg_stat_activity`.
fn runner_env(mqtt_url: &str, database_url: &str, client_id: &str) -> Vec<(&'static str, String)> {
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
async fn start_runner(env: &[(&'static str, String)]) -> RunnerProcess {
    let mut runner = RunnerProcess::start(Path::new(RUNNER), env.iter().cloned());
    runner.wait_for_log("subscribed", STARTUP).await;
    runner
}

/// The runner's `mqtt source stopped` line, as numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stopped {
    received: u64,
    acknowledged: u64,
    /// `received - acknowledged`: includes messages of a lost connection,
    /// committed but redelivered on the next one.
    unacknowledged: u64,
    /// Messages the runner still tracked at stop (taken, not yet settled).
    in_flight: u64,
}

/// Parses the last `mqtt source stopped received=… acknowledged=…
/// unacknowledged=…` line; panics with the log if there is none.
fn stopped(log: &str) -> Stopped {
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
async fn stop_gracefully(runner: &mut RunnerProcess) -> (Stopped, Duration) {
    let asked = Instant::now();
    runner.sigterm();
    wait_stopped(runner, asked).await
}

/// Waits for exit 0 within the drain timeout of a SIGTERM sent at `asked`;
/// returns the stop line and how long the stop took.
async fn wait_stopped(runner: &mut RunnerProcess, asked: Instant) -> (Stopped, Duration) {
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
fn assert_no_bug_lines(log: &str) {
    let bugs: Vec<&str> = log.lines().filter(|l| l.contains("BUG")).collect();
    assert!(
        bugs.is_empty(),
        "the runner reported bugs:\n{}",
        bugs.join("\n")
    );
}

/// Rows in `ts_measure`.
async fn rows(db: &TestDb) -> i64 {
    db.count("select count(*) from ts_measure").await
}

/// Waits until `ts_measure` holds at least `n` rows; returns the count.
async fn wait_rows_at_least(db: &TestDb, n: i64, timeout: Duration) -> i64 {
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
async fn assert_each_message_once(db: &TestDb, n: usize) {
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
async fn wait_backends_gone(db: &TestDb, client_id: &str) {
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
struct Stream {
    /// Messages the broker has acknowledged so far.
    published: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Stream {
    fn start(publisher: Arc<Publisher>, range: Range<usize>) -> Stream {
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

    fn published(&self) -> usize {
        self.published.load(Ordering::SeqCst)
    }

    /// Waits until every message is acknowledged by the broker.
    async fn finish(self) {
        tokio::time::timeout(Duration::from_secs(90), self.task)
            .await
            .expect("the stream is published within 90 s")
            .expect("the publishing task does not panic");
    }
}

/// The pid of a `TestBroker`'s mosquitto, found by its private config path
/// (unique to this broker), since `TestBroker` does not expose it.
fn broker_pid(broker: &TestBroker) -> u32 {
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
async fn save_broker(broker: &TestBroker) {
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
fn session_ends(broker: &TestBroker, client_id: &str) -> Vec<String> {
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
fn verbose_broker() -> TestBroker {
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
fn packet_ids_acknowledged_twice_on_last_connection(log: &str, client_id: &str) -> Vec<u16> {
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

/// Item 1: the database connection is cut for 4 s while messages stream in.
/// The runner retries (logging it), reconnects once the network is back, and
/// stores every message once; the broker delivered each message once (its
/// session never broke), and every one was acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_cut_mid_stream_stores_every_row_once() {
    let started = Instant::now();
    let broker = TestBroker::start();
    let db = TestDb::create("faults_database_cut").await;
    let proxy = TcpProxy::start(POSTGRES).await;
    let client_id = "faults-db-cut";
    let env = runner_env(&broker.url(), &proxy.url_for(db.url()), client_id);
    let mut runner = start_runner(&env).await;
    let publisher = Arc::new(Publisher::connect(&broker.url(), "faults-db-cut-device").await);

    let first = Stream::start(publisher.clone(), 0..FIRST);
    let before_cut = wait_rows_at_least(&db, FAULT_AFTER_ROWS, ROWS_TIMEOUT).await;
    proxy.cut().await;
    let connections_at_cut = proxy.connections();
    // Once the server has ended the runner's sessions, a COMMIT that was
    // already on its way has been applied (or not): the count is final.
    wait_backends_gone(&db, client_id).await;
    let rows_at_cut = rows(&db).await;
    let published_at_cut = first.published();
    let rest = Stream::start(publisher, FIRST..N);

    // The outage itself: 4 s, during which the stream goes on.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let rows_during_cut = rows(&db).await;
    assert_eq!(
        rows_during_cut, rows_at_cut,
        "rows were written while the database was unreachable"
    );
    let refused = proxy.refused();
    proxy.restore();
    let restored = Instant::now();

    first.finish().await;
    rest.finish().await;
    wait_rows_at_least(&db, N as i64, ROWS_TIMEOUT).await;
    let caught_up = restored.elapsed();
    let (stop, _) = stop_gracefully(&mut runner).await;

    assert_each_message_once(&db, N).await;
    let log = runner.log();
    let retries = log
        .lines()
        .filter(|l| l.contains("write failed; retrying"))
        .count();
    assert!(
        retries > 0,
        "no `write failed; retrying` in the log:\n{log}"
    );
    assert!(
        proxy.connections() > connections_at_cut,
        "the runner opened no new database connection after the cut \
         ({connections_at_cut} before, {} after)",
        proxy.connections()
    );
    // The MQTT session never broke: each message arrived exactly once and
    // was acknowledged; none is left for redelivery.
    assert_eq!(
        stop,
        Stopped {
            received: N as u64,
            acknowledged: N as u64,
            unacknowledged: 0,
            in_flight: 0,
        },
        "stop line"
    );
    eprintln!(
        "database_cut: rows at cut {rows_at_cut} (waited for {before_cut}), published at cut \
         {published_at_cut}/{FIRST}, {refused} connection(s) refused during the cut, {retries} \
         `write failed` line(s), database connections {connections_at_cut} before / {} after, \
         all rows {caught_up:?} after restore, test {:?}",
        proxy.connections(),
        started.elapsed()
    );
}

/// What [`kill_broker_mid_stream`] observed.
struct BrokerKill {
    /// The runner's stop line.
    stop: Stopped,
    /// Packet ids acknowledged twice on the runner's new connection.
    acknowledged_twice: Vec<u16>,
}

/// Item 2's scenario: the broker is killed (SIGKILL) while the runner holds
/// messages it has not acknowledged, and restarted a second later; the
/// runner reconnects, takes the redeliveries, and every message lands once.
///
/// Mosquitto acknowledges a publish before it writes it to disk, and saves
/// at most once per loop iteration (even with `autosave_on_changes`), so a
/// SIGKILL while a publisher is busy loses messages the publisher was told
/// were stored: the broker's loss, not the runner's. To keep this about the
/// runner, the kill comes when the publisher is idle and right after a
/// forced save (SIGUSR1), with the runner frozen (SIGSTOP) mid-stream so it
/// certainly holds unacknowledged messages — some in its pipeline, the rest
/// in the broker's in-flight window — when the broker dies: messages
/// `0..FIRST` are published before the freeze, `FIRST..N/2` during it, and
/// the last half while the broker is down (the Publisher re-sends what was
/// never acknowledged) and after it is back.
///
/// With `commit_while_disconnected`, the runner's database goes through a
/// [`TcpProxy`] that is cut while the broker is down and restored only once
/// the runner has noticed the lost connection; the broker comes back only
/// after some of the old connection's messages are committed, so their
/// acknowledgements are due while the runner has no connection.
async fn kill_broker_mid_stream(name: &str, commit_while_disconnected: bool) -> BrokerKill {
    let started = Instant::now();
    let mut broker = verbose_broker();
    let db = TestDb::create(name).await;
    let proxy = TcpProxy::start(POSTGRES).await;
    let database_url = if commit_while_disconnected {
        proxy.url_for(db.url())
    } else {
        db.url().to_owned()
    };
    let client_id = name.replace('_', "-");
    let mut runner = start_runner(&runner_env(&broker.url(), &database_url, &client_id)).await;
    let publisher =
        Arc::new(Publisher::connect(&broker.url(), &format!("{client_id}-device")).await);

    // Messages FIRST..held are published while the runner is frozen.
    let held = N / 2;
    let first = Stream::start(publisher.clone(), 0..FIRST);
    wait_rows_at_least(&db, FAULT_AFTER_ROWS, ROWS_TIMEOUT).await;
    runner.pause();
    let rows_at_pause = rows(&db).await;
    let frozen = Stream::start(publisher.clone(), FIRST..held);
    first.finish().await;
    frozen.finish().await;
    // Everything published so far is acknowledged by the broker and, after
    // this, on its disk: what the runner has not acknowledged survives.
    save_broker(&broker).await;
    broker.kill();
    if commit_while_disconnected {
        proxy.cut().await;
        wait_backends_gone(&db, &client_id).await;
        let committed = rows(&db).await;
        runner.resume();
        runner
            .wait_for_log("mqtt connection lost", ROWS_TIMEOUT)
            .await;
        proxy.restore();
        wait_rows_at_least(&db, committed + 1, ROWS_TIMEOUT).await;
    } else {
        runner.resume();
    }
    let rest = Stream::start(publisher, held..N);
    // The outage itself.
    tokio::time::sleep(Duration::from_secs(1)).await;
    broker.restart();
    let restarted = Instant::now();

    runner
        .wait_for_log_count("connected to broker", 2, ROWS_TIMEOUT)
        .await;
    let reconnected = restarted.elapsed();
    rest.finish().await;
    wait_rows_at_least(&db, N as i64, ROWS_TIMEOUT).await;
    let caught_up = restarted.elapsed();
    let (stop, _) = stop_gracefully(&mut runner).await;

    assert_each_message_once(&db, N).await;
    let log = runner.log();
    assert!(log.contains("mqtt connection lost; reconnecting"), "{log}");
    // Messages of the killed connection are no longer tracked once committed
    // (they are redelivered, so they count as unacknowledged, not in flight).
    assert_eq!(stop.in_flight, 0, "nothing left in flight: {stop:?}");
    // What the runner had not acknowledged when the broker saved is
    // redelivered on the new connection: the runner received more than N.
    assert!(
        stop.received > N as u64,
        "no redeliveries after the broker restart: {stop:?}"
    );
    let acknowledged_twice =
        packet_ids_acknowledged_twice_on_last_connection(&broker.log(), &client_id);
    eprintln!(
        "{name}: rows when the runner was paused {rows_at_pause}, reconnected \
         {reconnected:?} and all rows {caught_up:?} after the restart, runner {stop:?} \
         ({} received twice), `connected to broker` {} time(s), packet ids acknowledged \
         twice on the new connection: {} (first: {:?}), test {:?}",
        stop.received - N as u64,
        runner.log_count("connected to broker"),
        acknowledged_twice.len(),
        acknowledged_twice.iter().take(5).collect::<Vec<_>>(),
        started.elapsed()
    );
    BrokerKill {
        stop,
        acknowledged_twice,
    }
}

/// Item 2: see [`kill_broker_mid_stream`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_killed_and_restarted_mid_stream_stores_every_row_once() {
    kill_broker_mid_stream("faults_broker_killed", false).await;
}

/// Issue 3, "Broker restart": "Unacknowledged packet ids from the old
/// connection are never acknowledged on the new one." In the scenario of
/// [`kill_broker_mid_stream`], with some of the old connection's messages
/// committed while the runner is disconnected, no packet id is acknowledged
/// twice on the new connection (the broker keeps a message's packet id
/// across a restart, so a second PUBACK for an id is the old connection's).
///
/// Before the fix, PUBACKs queued while the connection was down (for
/// messages of the old connection that committed before the new CONNACK)
/// were written on the new connection: 20 to 1 197 ids acknowledged twice
/// per run. Harmless with Mosquitto and a kept session (the id still names
/// the same message), but with a lost session the id may name a new message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_broker_restart_old_packet_ids_are_not_acknowledged_on_the_new_connection() {
    let outcome = kill_broker_mid_stream("faults_old_packet_ids", true).await;
    assert_eq!(
        outcome.acknowledged_twice,
        Vec::<u16>::new(),
        "packet ids acknowledged twice on the new connection ({:?})",
        outcome.stop
    );
}

/// Item 3: the runner is killed (SIGKILL) mid-stream and started again with
/// the same client id. The broker redelivers everything the first process
/// had not acknowledged, committed or not; the unique key absorbs the
/// redeliveries, and every message is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_sigkilled_mid_stream_then_restarted_stores_every_row_once() {
    let started = Instant::now();
    let broker = TestBroker::start();
    let db = TestDb::create("faults_runner_sigkilled").await;
    let client_id = "faults-runner-killed";
    let env = runner_env(&broker.url(), db.url(), client_id);
    let mut first = start_runner(&env).await;
    let publisher =
        Arc::new(Publisher::connect(&broker.url(), "faults-runner-killed-device").await);

    let stream = Stream::start(publisher.clone(), 0..FIRST);
    wait_rows_at_least(&db, FAULT_AFTER_ROWS, ROWS_TIMEOUT).await;
    first.sigkill();
    let published_at_kill = stream.published();
    let rest = Stream::start(publisher, FIRST..N);
    let status = first.wait(Duration::from_secs(10)).await;
    assert!(!status.success(), "SIGKILL ends the runner: {status}");
    wait_backends_gone(&db, client_id).await;
    let committed_by_first = rows(&db).await;
    assert!(
        committed_by_first < N as i64,
        "the kill came after the stream: {committed_by_first} rows"
    );

    let mut second = start_runner(&env).await;
    stream.finish().await;
    rest.finish().await;
    wait_rows_at_least(&db, N as i64, ROWS_TIMEOUT).await;
    let (stop, _) = stop_gracefully(&mut second).await;

    assert_each_message_once(&db, N).await;
    let not_committed = N as u64 - committed_by_first as u64;
    assert!(
        stop.received >= not_committed,
        "the second runner received {} but {not_committed} were never committed",
        stop.received
    );
    assert_eq!(
        (stop.acknowledged, stop.unacknowledged),
        (stop.received, 0),
        "the second runner acknowledged everything it took: {stop:?}"
    );
    eprintln!(
        "runner_sigkilled: first runner committed {committed_by_first} of {N} (published at \
         kill: {published_at_kill}); second runner received {} = {not_committed} never \
         committed + {} committed but not acknowledged before the kill; test {:?}",
        stop.received,
        stop.received - not_committed,
        started.elapsed()
    );
}

/// Item 4: SIGTERM mid-stream. The runner stops taking messages, commits and
/// acknowledges everything it took, exits 0 within the drain timeout, and
/// the broker keeps the rest for its session: a second run with the same
/// client id receives exactly the messages the first did not, so nothing
/// acknowledged is redelivered and every message is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_stream_drains_commits_and_acknowledges_everything() {
    let started = Instant::now();
    let broker = TestBroker::start();
    let db = TestDb::create("faults_sigterm").await;
    let client_id = "faults-sigterm";
    let env = runner_env(&broker.url(), db.url(), client_id);
    let mut first = start_runner(&env).await;
    let publisher = Arc::new(Publisher::connect(&broker.url(), "faults-sigterm-device").await);

    let stream = Stream::start(publisher.clone(), 0..FIRST);
    wait_rows_at_least(&db, FAULT_AFTER_ROWS, ROWS_TIMEOUT).await;
    let asked = Instant::now();
    first.sigterm();
    let published_at_stop = stream.published();
    // The rest arrives while the runner drains: it must not take it.
    let rest = Stream::start(publisher, FIRST..N);
    let (stop1, took) = wait_stopped(&mut first, asked).await;
    let rows_after_first = rows(&db).await;

    assert_eq!(
        (stop1.acknowledged, stop1.unacknowledged),
        (stop1.received, 0),
        "the first run acknowledged everything it took: {stop1:?}"
    );
    assert_eq!(
        rows_after_first, stop1.received as i64,
        "the first run committed exactly what it received"
    );
    assert!(
        stop1.received < N as u64,
        "the SIGTERM came after the stream: {stop1:?}"
    );

    stream.finish().await;
    rest.finish().await;
    let mut second = start_runner(&env).await;
    wait_rows_at_least(&db, N as i64, ROWS_TIMEOUT).await;
    let (stop2, _) = stop_gracefully(&mut second).await;

    assert_each_message_once(&db, N).await;
    // How the broker saw each session end: `disconnected` after a DISCONNECT,
    // `closed its connection` when the socket went away without one.
    let ends = session_ends(&broker, client_id);
    assert_eq!(
        stop2,
        Stopped {
            received: N as u64 - stop1.received,
            acknowledged: N as u64 - stop1.received,
            unacknowledged: 0,
            in_flight: 0,
        },
        "the second run gets exactly what the first did not take; the first \
         run's acknowledgements did not all reach the broker (broker: {ends:?})"
    );
    eprintln!(
        "sigterm: first run {stop1:?} stopped in {took:?} (published at stop: \
         {published_at_stop}), second run {stop2:?}, broker: {ends:?}, test {:?}",
        started.elapsed()
    );
}

/// Item 5: one message the database refuses (a NUL character in a text
/// value: valid JSON and valid against the schema, but PostgreSQL text
/// cannot hold it, SQLSTATE 22021) among good ones in one batch. The batch
/// is split down to it; it becomes one `db_rejected` dead letter with its
/// exact bytes and the database's message, and its neighbours commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_poison_message_in_a_batch_is_dead_lettered_and_the_rest_commit() {
    const GOOD: usize = 40;
    // A long batch window so all of them are in one batch.
    let mut p = TestPipeline::spawn_with("faults_poison", &[("INGEST_BATCH_MS", "200")]).await;
    let poison = br#"{"schema":"v1","ts":"2025-10-07T12:00:00Z","points":[{"name":"t","t":"text","v":"bad\u0000byte"}]}"#;
    let mut messages: Vec<(&str, Vec<u8>)> = (0..GOOD)
        .map(|i| (TOPIC, message(i).into_bytes()))
        .collect();
    messages.insert(GOOD / 2, (TOPIC, poison.to_vec()));
    p.publisher.publish_many(messages).await;

    p.wait_count("select count(*) from ingest_errors", 1).await;
    p.wait_count("select count(*) from ts_measure", GOOD as i64)
        .await;
    let summary = p.stop_runner().await;

    assert_each_good_row_once(&p.db, GOOD).await;
    let dead = p.db.dead_letters().await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    let DeadLetter {
        tenant_id,
        topic,
        reason,
        detail,
        payload,
    } = &dead[0];
    assert_eq!(tenant_id.as_deref(), Some(TENANT));
    assert_eq!(topic, TOPIC);
    assert_eq!(reason, "db_rejected");
    assert_eq!(payload, &poison.to_vec(), "the exact bytes received");
    let detail = detail.as_deref().unwrap_or_default();
    assert!(
        detail.contains("invalid byte sequence") && detail.contains("22021"),
        "the detail carries the database's message and SQLSTATE: {detail}"
    );
    assert_eq!(summary.received, GOOD as u64 + 1, "{summary:?}");
    assert_eq!(summary.acknowledged, GOOD as u64 + 1, "{summary:?}");
    assert_eq!(summary.dropped, 0, "{summary:?}");
    eprintln!("poison: detail {detail:?}; {summary:?}");
}

/// For the poison test: the good messages `0..n`, each once.
async fn assert_each_good_row_once(db: &TestDb, n: usize) {
    let n = n as i64;
    let counts = db
        .fetch_all::<(i64, i64, i64)>(
            "select count(*), count(distinct ts), count(distinct v_num) from ts_measure",
        )
        .await[0];
    assert_eq!(counts, (n, n, n), "(rows, distinct ts, distinct values)");
}

/// Item 6: a burst of 60 000 one-point messages, published as fast as four
/// publishers can (more than the runner's Receive Maximum of 50 000, so the
/// broker queues the rest), is stored without loss. Peak RSS and duration
/// are printed, not asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_60000_messages_is_absorbed_without_loss() {
    const BURST: usize = 60_000;
    const PUBLISHERS: usize = 4;
    let started = Instant::now();
    let broker = TestBroker::start();
    let db = TestDb::create("faults_burst").await;
    let client_id = "faults-burst";
    // The shipped batch settings: this is about the defaults' behaviour.
    let env: Vec<(&'static str, String)> = runner_env(&broker.url(), db.url(), client_id)
        .into_iter()
        .filter(|(key, _)| !key.starts_with("INGEST_BATCH"))
        .collect();
    let mut runner = start_runner(&env).await;

    let burst_started = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..PUBLISHERS {
        let url = broker.url();
        tasks.push(tokio::spawn(async move {
            let publisher = Publisher::connect(&url, &format!("faults-burst-device-{p}")).await;
            let ids = (p..BURST).step_by(PUBLISHERS);
            publisher
                .publish_many(ids.map(|i| (TOPIC, message(i))))
                .await;
        }));
    }
    for task in tasks {
        task.await.expect("a publisher does not panic");
    }
    let published_in = burst_started.elapsed();
    let rss_after_publish = runner.peak_rss_kb();
    wait_rows_at_least(&db, BURST as i64, Duration::from_secs(90)).await;
    let stored_in = burst_started.elapsed();
    let (stop, _) = stop_gracefully(&mut runner).await;

    assert_each_message_once(&db, BURST).await;
    assert_eq!(
        stop,
        Stopped {
            received: BURST as u64,
            acknowledged: BURST as u64,
            unacknowledged: 0,
            in_flight: 0,
        }
    );
    let queue_full = runner.log_count("source output full");
    eprintln!(
        "burst: {BURST} messages published in {published_in:?} and stored in {stored_in:?} \
         ({:.0} msg/s end to end); runner peak RSS {:.1} MB ({:.1} MB when publishing ended); \
         `source output full` {queue_full} time(s); test {:?}",
        BURST as f64 / stored_in.as_secs_f64(),
        runner.peak_rss_kb() as f64 / 1024.0,
        rss_after_publish as f64 / 1024.0,
        started.elapsed()
    );
}

/// Issue 3, "Graceful stop": a SIGTERM while the database is unreachable
/// and the pipeline is full still ends the process within the drain timeout
/// (what was not committed stays with the broker), and nothing is lost: a
/// second run, with the database back, stores every message once.
///
/// Before the fix, the MQTT source waited for room in the first stage's
/// 1024-slot channel inside the event-loop arm of its `select!`, so it saw
/// neither the shutdown nor its drain deadline (nor sent keep-alives) until
/// the database returned: still running 50 s after SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_database_outage_exits_within_the_drain_timeout() {
    const MESSAGES: usize = 5000;
    let broker = TestBroker::start();
    let db = TestDb::create("faults_sigterm_db_outage").await;
    let proxy = TcpProxy::start(POSTGRES).await;
    let client_id = "faults-sigterm-outage";
    let env = runner_env(&broker.url(), &proxy.url_for(db.url()), client_id);
    let mut first = start_runner(&env).await;
    let publisher = Publisher::connect(&broker.url(), "faults-sigterm-outage-device").await;

    proxy.cut().await;
    // More than the pipeline's channels hold (3 × 1024 on the telemetry path).
    publisher
        .publish_many((0..MESSAGES).map(|i| (TOPIC, message(i))))
        .await;
    first
        .wait_for_log("write failed; retrying", ROWS_TIMEOUT)
        .await;
    let asked = Instant::now();
    first.sigterm();
    let status = first.wait(DRAIN_TIMEOUT + Duration::from_secs(10)).await;
    let took = asked.elapsed();
    assert!(status.success(), "exit status {status}");
    assert!(
        first.log().contains("drain timed out"),
        "{}",
        first.log_tail()
    );

    proxy.restore();
    let mut second = start_runner(&env).await;
    wait_rows_at_least(&db, MESSAGES as i64, ROWS_TIMEOUT).await;
    stop_gracefully(&mut second).await;
    assert_each_message_once(&db, MESSAGES).await;
    eprintln!("sigterm_during_outage: exited {took:?} after SIGTERM");
}
