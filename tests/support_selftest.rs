//! Tests of `tests/support` itself, against the machine's PostgreSQL and
//! private Mosquitto brokers. If these fail, other integration tests'
//! failures say nothing about the service.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::{Connection, PgConnection};
use support::broker::accepts;
use support::{db, eventually, mqtt, Publisher, Subscriber, TestBroker, TestDb};

/// Bound on every wait for a delivery in these tests.
const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_db_is_created_usable_and_dropped_after_a_passing_test() {
    let db = TestDb::create("selftest_db_lifecycle").await;
    let name = db.name().to_owned();
    assert!(name.starts_with("t_selftest_db_lifecycle_"), "{name}");
    assert!(db::database_exists(&name).await, "{name} missing");

    db.execute(
        "create table reading (name text not null, v double precision);
         insert into reading values ('a', 1.5), ('b', 2.5);",
    )
    .await;
    assert_eq!(db.count("select count(*) from reading").await, 2);
    let rows: Vec<(String, f64)> = db
        .fetch_all("select name, v from reading order by name")
        .await;
    assert_eq!(rows, [("a".to_owned(), 1.5), ("b".to_owned(), 2.5)]);

    // The helper pool is capped and sees past row-level security.
    assert_eq!(db.pool().options().get_max_connections(), 3);
    let superuser: bool =
        sqlx::query_scalar("select rolsuper from pg_roles where rolname = current_user")
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert!(superuser);

    // The URL is for the same database, as the code under test will use it;
    // its open connection must not stop the drop.
    let mut conn = PgConnection::connect(db.url()).await.unwrap();
    let current: String = sqlx::query_scalar("select current_database()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(current, name);

    drop(db);
    assert!(
        !db::database_exists(&name).await,
        "{name} still exists after drop"
    );
    // The drop ended this connection; closing it may fail, which is fine.
    let _ = conn.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_test_dbs_get_different_databases() {
    let (a, b) = tokio::join!(
        TestDb::create("selftest_parallel"),
        TestDb::create("selftest_parallel")
    );
    assert_ne!(a.name(), b.name());
    a.execute("create table only_in_a (x int)").await;
    let in_b = b
        .count("select count(*) from pg_tables where tablename = 'only_in_a'")
        .await;
    assert_eq!(in_b, 0);
}

#[test]
fn database_names_are_lowercase_bounded_and_distinct() {
    assert_eq!(
        db::database_name("Module::Weird Name!", 7, 0),
        "t_module_weird_name_7_0"
    );
    assert_eq!(db::database_name("::", 7, 1), "t_test_7_1");

    let long = "Some::Module::a_very_long_test_name_that_goes_on_and_on_beyond_any_limit";
    let a = db::database_name(long, 4_194_304, 123_456);
    let b = db::database_name(&format!("{long}_too"), 4_194_304, 123_456);
    for name in [&a, &b] {
        assert!(name.len() <= 63, "{name} is {} bytes", name.len());
        assert!(
            name.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_'),
            "{name}"
        );
        assert!(name.ends_with("_4194304_123456"), "{name}");
    }
    assert_ne!(a, b, "long names sharing a prefix must not collide");
    // Stable across runs, so a kept database is found again.
    assert_eq!(a, db::database_name(long, 4_194_304, 123_456));
}

#[test]
fn a_failed_tests_database_is_kept() {
    let (tx, rx) = std::sync::mpsc::channel();
    let outcome = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let db = TestDb::create("selftest_kept").await;
            tx.send(db.name().to_owned()).unwrap();
            panic!("deliberate panic, to see the database kept (expected in this output)");
        })
    })
    .join();
    assert!(outcome.is_err(), "the inner test should have panicked");
    let name = rx.recv().unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        assert!(db::database_exists(&name).await, "{name} was not kept");
        let mut admin = PgConnection::connect(&db::admin_url()).await.unwrap();
        sqlx::raw_sql(&format!(r#"drop database "{name}" with (force)"#))
            .execute(&mut admin)
            .await
            .unwrap();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_database_of_a_finished_run_is_dropped_when_the_test_runs_again() {
    // A pid no process has: the run that kept this database is over.
    let dead_pid = (1_000_000..4_000_000u32)
        .rev()
        .find(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
        .unwrap();
    // Named after our pid so that concurrent runs of this binary (other
    // worktrees) do not share the fake leftover.
    let test_name = format!("selftest_leftover_{}", std::process::id());
    let leftover = db::database_name(&test_name, dead_pid, 0);
    let mut admin = PgConnection::connect(&db::admin_url()).await.unwrap();
    for sql in [
        format!(r#"drop database if exists "{leftover}" with (force)"#),
        format!(r#"create database "{leftover}""#),
    ] {
        sqlx::raw_sql(&sql).execute(&mut admin).await.unwrap();
    }

    let db = TestDb::create(&test_name).await;
    assert!(!db::database_exists(&leftover).await, "{leftover} survived");
    assert!(db::database_exists(db.name()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_receives_what_publisher_sends_including_large_payloads() {
    let broker = TestBroker::start();
    assert_eq!(broker.url(), format!("mqtt://127.0.0.1:{}", broker.port()));
    let mut sub = Subscriber::connect(&broker.url(), &mqtt::client_id("sub"), "selftest/#").await;
    let publisher = Publisher::connect(&broker.url(), &mqtt::client_id("pub")).await;

    publisher.publish("selftest/small", "hello").await;
    let large: Vec<u8> = (0..300 * 1024).map(|i| (i % 251) as u8).collect();
    publisher.publish("selftest/large", large.clone()).await;

    assert_eq!(
        sub.next(WAIT).await,
        Some(("selftest/small".to_owned(), b"hello".to_vec()))
    );
    let (topic, payload) = sub.next(WAIT).await.expect("the 300 KiB message");
    assert_eq!(topic, "selftest/large");
    assert_eq!(payload.len(), large.len());
    assert!(payload == large, "300 KiB payload arrived altered");
    assert_eq!(sub.next(Duration::from_millis(100)).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_many_and_concurrent_publishes_are_all_acknowledged_and_delivered() {
    let broker = TestBroker::start();
    let mut sub = Subscriber::connect(&broker.url(), &mqtt::client_id("sub"), "burst/#").await;
    let publisher = Publisher::connect(&broker.url(), &mqtt::client_id("pub")).await;

    // More than the in-flight window (1024), so packet ids wrap around.
    let n = 3000;
    publisher
        .publish_many((0..n).map(|i| ("burst/ordered", i.to_string())))
        .await;
    for i in 0..n {
        let (_, payload) = sub
            .next(WAIT)
            .await
            .unwrap_or_else(|| panic!("message {i} of {n} missing"));
        assert_eq!(payload, i.to_string().into_bytes(), "order broken at {i}");
    }

    // Four callers at once share one connection and its PUBACK bookkeeping.
    let publisher = Arc::new(publisher);
    let callers: Vec<_> = (0..4)
        .map(|caller| {
            let publisher = publisher.clone();
            tokio::spawn(async move {
                for i in 0..250 {
                    publisher
                        .publish(&format!("burst/{caller}"), format!("{caller}-{i}"))
                        .await;
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await.expect("a concurrent publisher panicked");
    }
    let mut received = 0;
    while sub.next(Duration::from_millis(500)).await.is_some() {
        received += 1;
    }
    assert_eq!(received, 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_waits_for_the_puback_across_a_broker_restart() {
    let mut broker = TestBroker::start();
    let port = broker.port();
    let publisher = Arc::new(Publisher::connect(&broker.url(), &mqtt::client_id("pub")).await);

    broker.stop();
    assert!(!accepts(port), "stopped broker still accepts");
    let pending = tokio::spawn({
        let publisher = publisher.clone();
        async move { publisher.publish("selftest/queued", "x").await }
    });
    // Deliberately bounded: long enough for a wrongly early return to show.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!pending.is_finished(), "publish returned without a broker");

    broker.restart();
    assert_eq!(broker.port(), port);
    tokio::time::timeout(WAIT, pending)
        .await
        .expect("no PUBACK after the restart")
        .expect("publish panicked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_in_flight_when_the_broker_stops_are_sent_again() {
    let mut broker = TestBroker::start();
    let mut sub = Subscriber::connect(&broker.url(), &mqtt::client_id("sub"), "inflight/#").await;
    let publisher = Arc::new(Publisher::connect(&broker.url(), &mqtt::client_id("pub")).await);
    let burst = tokio::spawn({
        let publisher = publisher.clone();
        async move {
            publisher
                .publish_many((0..10_000).map(|i| ("inflight/burst", i.to_string())))
                .await
        }
    });
    // Stop the broker while the burst is under way, with publishes on the
    // wire; rumqttc would drop those on reconnecting.
    for i in 0..500 {
        sub.next(WAIT)
            .await
            .unwrap_or_else(|| panic!("burst stalled at {i}"));
    }
    broker.stop();
    broker.restart();
    tokio::time::timeout(Duration::from_secs(60), burst)
        .await
        .expect("burst not acknowledged after the restart")
        .expect("publish_many panicked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_session_gets_messages_queued_while_offline_across_a_restart() {
    let mut broker = TestBroker::start();
    let url = broker.url();
    let port = broker.port();
    let id = mqtt::client_id("persistent");

    Subscriber::connect_persistent(&url, &id, "selftest/persist")
        .await
        .disconnect()
        .await;
    let publisher = Publisher::connect(&url, &mqtt::client_id("pub")).await;
    publisher
        .publish("selftest/persist", "sent while offline")
        .await;

    // SIGTERM: mosquitto writes the session and its queue to mosquitto.db.
    broker.stop();
    assert!(broker.dir().join("mosquitto.db").exists());
    broker.restart();
    assert_eq!(broker.port(), port);

    let mut sub = Subscriber::connect_persistent(&url, &id, "selftest/persist").await;
    assert_eq!(
        sub.next(WAIT).await,
        Some((
            "selftest/persist".to_owned(),
            b"sent while offline".to_vec()
        )),
        "broker log:\n{}",
        broker.log()
    );
    // The publisher reconnected by itself.
    publisher.publish("selftest/persist", "after restart").await;
    assert_eq!(
        sub.next(WAIT).await,
        Some(("selftest/persist".to_owned(), b"after restart".to_vec()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_subscriber_resubscribes_after_the_broker_is_killed_and_restarted() {
    let mut broker = TestBroker::start();
    let url = broker.url();
    let mut sub = Subscriber::connect(&url, &mqtt::client_id("sub"), "selftest/again").await;
    let publisher = Publisher::connect(&url, &mqtt::client_id("pub")).await;

    broker.kill();
    assert!(!broker.is_running());
    broker.restart();
    assert!(broker.is_running());
    sub.wait_resubscribed().await;

    publisher.publish("selftest/again", "hello again").await;
    assert_eq!(
        sub.next(WAIT).await,
        Some(("selftest/again".to_owned(), b"hello again".to_vec()))
    );
}

#[test]
fn dropping_the_broker_kills_it() {
    let broker = TestBroker::start();
    let port = broker.port();
    assert!(accepts(port));
    assert!(broker.log().contains("running"), "log: {}", broker.log());
    drop(broker);
    assert!(!accepts(port), "port {port} still accepts after drop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eventually_returns_the_value_once_the_condition_holds() {
    let polls = AtomicU32::new(0);
    let value = eventually("the third poll", WAIT, || async {
        let n = polls.fetch_add(1, Ordering::SeqCst) + 1;
        if n >= 3 {
            Ok(n)
        } else {
            Err(n)
        }
    })
    .await;
    assert_eq!(value, 3);
    assert_eq!(eventually("some", WAIT, || async { Some("x") }).await, "x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[should_panic(expected = "waiting for the impossible: last observed 7")]
async fn eventually_panics_with_what_and_the_last_observed_value() {
    eventually("the impossible", Duration::from_millis(200), || async {
        Err::<(), _>(7)
    })
    .await;
}
