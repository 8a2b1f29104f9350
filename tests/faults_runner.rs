//! Nothing lost, nothing doubled when the runner itself stops (issue 3,
//! "Tests that must exist", items 3 and 4): SIGKILLed mid-stream and started
//! again, or SIGTERMed mid-stream and left to drain.
//!
//! The method — a unique id per message, exact counts in SQL, the fault
//! landing mid-stream while a paced publisher runs — is described in
//! `tests/support/faults.rs`, which holds the helpers these tests share.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use support::faults::{
    assert_each_message_once, rows, runner_env, session_ends, start_runner, stop_gracefully,
    wait_backends_gone, wait_rows_at_least, wait_stopped, Stopped, Stream, FAULT_AFTER_ROWS, FIRST,
    N, ROWS_TIMEOUT,
};
use support::{Publisher, TestBroker, TestDb};

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
