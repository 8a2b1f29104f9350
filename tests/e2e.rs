//! End to end: the shipped pipeline against a real Mosquitto and a real
//! PostgreSQL, driven the way a user would, with an MQTT client and SQL.
//! Each test has its own broker and database. (Issue 2, items 1–6.)

mod support;

use std::time::Duration;

use support::pipeline::TestPipeline;

const TELEM: &str = "traksense/test_alpha/factory/device123/telem";
const ACK: &str = "traksense/test_alpha/factory/device123/ack";

/// Item 1: a v1 message gives one typed row per point, with unit and meta;
/// the same message again stores nothing new.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_telemetry_gives_one_typed_row_per_point() {
    let p = TestPipeline::spawn("v1_telemetry").await;
    let payload = r#"{"schema":"v1","ts":"2025-10-07T15:30:00Z",
        "points":[{"name":"temp_agua","t":"float","v":25.5,"u":"°C"},
                  {"name":"running","t":"bool","v":true},
                  {"name":"mode","t":"enum","v":"AUTO"},
                  {"name":"count","t":"int","v":42},
                  {"name":"cfg","t":"json","v":{"a":[1,2]}},
                  {"name":"late","v":1.5,"ts":"2025-10-07T15:29:00+02:00"}],
        "meta":{"fw":"1.0.0","src":"test"},"tenant":"someone_else"}"#;
    p.publish(TELEM, payload).await;
    p.wait_count("select count(*) from ts_measure", 6).await;

    type Row = (
        String,
        Option<String>,
        String,
        String,
        String,
        Option<f64>,
        Option<bool>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let rows: Vec<Row> =
        p.db.fetch_all(
            "select tenant_id, site_id, device_id, point_id, \
               to_char(ts at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS'), \
               v_num, v_bool, v_text, v_json::text, unit, meta::text \
             from ts_measure order by point_id",
        )
        .await;
    let meta = Some(r#"{"fw": "1.0.0", "src": "test"}"#.to_string());
    let row = |point: &str,
               ts: &str,
               num,
               boolean,
               text: Option<&str>,
               json: Option<&str>,
               unit: Option<&str>|
     -> Row {
        (
            "test_alpha".into(),
            Some("factory".into()),
            "device123".into(),
            point.into(),
            ts.into(),
            num,
            boolean,
            text.map(str::to_string),
            json.map(str::to_string),
            unit.map(str::to_string),
            meta.clone(),
        )
    };
    let at = "2025-10-07T15:30:00";
    assert_eq!(
        rows,
        vec![
            row("cfg", at, None, None, None, Some(r#"{"a": [1, 2]}"#), None),
            row("count", at, Some(42.0), None, None, None, None),
            row(
                "late",
                "2025-10-07T13:29:00",
                Some(1.5),
                None,
                None,
                None,
                None
            ),
            row("mode", at, None, None, Some("AUTO"), None, None),
            row("running", at, None, Some(true), None, None, None),
            row("temp_agua", at, Some(25.5), None, None, None, Some("°C")),
        ]
    );

    // A redelivery (same message again) stores nothing new.
    p.publish(TELEM, payload).await;
    p.publish(
        TELEM,
        r#"{"schema":"v1","ts":"2025-10-07T15:31:00Z","points":[{"name":"temp_agua","v":26}]}"#,
    )
    .await;
    p.wait_count("select count(*) from ts_measure", 7).await;
    let summary = p.stop().await;
    assert_eq!(summary.received, 3);
    assert_eq!(summary.acknowledged, 3);
    assert_eq!(summary.dropped, 0);
}

/// Item 2: parsec_v1, with and without its `schema` field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parsec_v1_gives_status_fault_and_rssi() {
    let p = TestPipeline::spawn("parsec").await;
    let topic = "traksense/test_alpha/factory/parsec7/telem";
    p.publish(topic, r#"{"schema":"parsec_v1","ts":"2025-10-07T15:30:00Z","di1":1,"di2":0,"rssi":-67,"fw":"2.1.3"}"#)
        .await;
    p.publish(topic, r#"{"ts":"2025-10-07T15:31:00Z","di1":0,"di2":1}"#)
        .await;
    p.wait_count("select count(*) from ts_measure", 5).await;
    /// (minute, point, v_num, v_bool, v_text, unit, meta)
    type Row = (
        String,
        String,
        Option<f64>,
        Option<bool>,
        Option<String>,
        Option<String>,
        String,
    );
    let rows: Vec<Row> = p
        .db
        .fetch_all(
            "select to_char(ts at time zone 'UTC', 'HH24:MI'), point_id, v_num, v_bool, v_text, unit, meta::text \
             from ts_measure order by ts, point_id",
        )
        .await;
    let m1 = r#"{"fw": "2.1.3", "src": "parsec_v1"}"#.to_string();
    let m2 = r#"{"src": "parsec_v1"}"#.to_string();
    assert_eq!(
        rows,
        vec![
            (
                "15:30".into(),
                "fault".into(),
                None,
                Some(false),
                None,
                None,
                m1.clone()
            ),
            (
                "15:30".into(),
                "rssi".into(),
                Some(-67.0),
                None,
                None,
                Some("dBm".into()),
                m1.clone()
            ),
            (
                "15:30".into(),
                "status".into(),
                None,
                None,
                Some("RUN".into()),
                None,
                m1
            ),
            (
                "15:31".into(),
                "fault".into(),
                None,
                Some(true),
                None,
                None,
                m2.clone()
            ),
            (
                "15:31".into(),
                "status".into(),
                None,
                None,
                Some("STOP".into()),
                None,
                m2
            ),
        ]
    );
    p.stop().await;
}

/// Item 3: every kind of bad message gives one dead letter with its reason,
/// an actionable detail and the exact original bytes; the runner goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_message_is_kept_with_reason_detail_and_bytes() {
    let mut p = TestPipeline::spawn("bad_messages").await;
    let too_large = {
        let mut big =
            br#"{"schema":"v1","ts":"2025-10-07T15:30:00Z","points":[{"name":"x","v":""#.to_vec();
        big.extend(std::iter::repeat_n(b'a', 300 * 1024));
        big.extend(br#""}]}"#);
        big
    };
    // (topic, payload, reason, words the detail must contain)
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (TELEM, b"{invalid json".to_vec(), "parse_error", "not JSON"),
        (TELEM, br#"{"schema":"v1","points":[{"name":"a","v":1}]}"#.to_vec(), "schema_error", "ts"),
        (TELEM, br#"{"schema":"v1","ts":"2025-10-07T15:30:00","points":[{"name":"a","v":1}]}"#.to_vec(), "bad_timestamp", "/ts"),
        (TELEM, br#"{"schema":"v1","ts":"2025-10-07T15:30:00Z","points":[{"name":"a","t":"float","v":"hot"}]}"#.to_vec(), "schema_error", "/points/0/v"),
        (TELEM, br#"{"schema":"v1","ts":"2025-10-07T15:30:00Z","points":[]}"#.to_vec(), "schema_error", "/points"),
        (TELEM, vec![0xff, 0xfe, b'{', 0x80], "parse_error", "UTF-8"),
        ("traksense/test_alpha/factory", b"{}".to_vec(), "bad_topic", "levels"),
        ("traksense/test_alpha/factory/device123/bogus", b"{}".to_vec(), "bad_topic", "bogus"),
        (TELEM, too_large, "too_large", "max_payload_bytes"),
        (TELEM, br#"{"schema":"v9","ts":"2025-10-07T15:30:00Z"}"#.to_vec(), "unknown_schema", "v9"),
        (TELEM, br#"{"ts":"2025-10-07T15:30:00Z","x":1}"#.to_vec(), "unknown_schema", "parsec_v1"),
        (TELEM, br#"{"schema":"v1","ts":"2025-10-07T15:30:00Z","ts":"x","points":[]}"#.to_vec(), "parse_error", "duplicate"),
    ];
    for (topic, payload, _, _) in &cases {
        p.publish(topic, payload.clone()).await;
    }
    // A redelivered bad message (same topic, same bytes) is kept once.
    p.publish(TELEM, b"{invalid json".to_vec()).await;
    p.wait_count("select count(*) from ingest_errors", cases.len() as i64)
        .await;
    let rows = p.db.dead_letters().await;
    // The pipeline may reorder dead letters from different stages; match by bytes.
    for (topic, payload, reason, words) in &cases {
        let found = rows
            .iter()
            .find(|r| &r.payload == payload && r.topic == *topic)
            .unwrap_or_else(|| panic!("no dead letter for {reason} ({} bytes)", payload.len()));
        assert_eq!(
            found.reason, *reason,
            "reason for {topic}: {:?}",
            found.detail
        );
        let detail = found.detail.as_deref().unwrap_or_default();
        assert!(
            detail.contains(words),
            "detail for {reason} should mention {words:?}: {detail}"
        );
        let tenant = if topic.starts_with("traksense/test_alpha/factory/") {
            Some("test_alpha")
        } else {
            None
        };
        assert_eq!(found.tenant_id.as_deref(), tenant, "tenant of {reason}");
    }
    assert_eq!(
        p.db.count("select count(*) from ts_measure").await,
        0,
        "malformed input never becomes a row"
    );

    // Still running: a good message still lands.
    assert!(p.is_running());
    p.publish(
        TELEM,
        r#"{"schema":"v1","ts":"2025-10-07T15:30:00Z","points":[{"name":"ok","v":1}]}"#,
    )
    .await;
    p.wait_count("select count(*) from ts_measure", 1).await;
    let summary = p.stop_runner().await;
    assert_eq!(summary.acknowledged, cases.len() as u64 + 2);
    let dead_letters_committed = summary
        .sinks
        .iter()
        .find(|(name, _, _)| name == "dead_letter")
        .map(|(_, messages, _)| *messages);
    assert_eq!(
        dead_letters_committed,
        Some(cases.len() as u64 + 1),
        "the redelivered bad message was committed too"
    );
    assert_eq!(
        p.db.count("select count(*) from ingest_errors").await,
        cases.len() as i64,
        "a redelivered dead letter is stored once"
    );
}

/// Item 4: the same ACK three times leaves one row; updated_at moves,
/// created_at stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_ack_is_upserted_once() {
    let p = TestPipeline::spawn("ack_upsert").await;
    let ack = r#"{"schema":"v1","cmd_id":"01HQZC5K3M8YBQWER7TXZ9V2P3","ok":true,"ts_exec":"2025-10-07T15:30:00Z","err":null}"#;
    let stamps = || async {
        p.db.fetch_all::<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)>(
            "select created_at, updated_at from cmd_ack",
        )
        .await
    };
    p.publish(ACK, ack).await;
    p.wait_count("select count(*) from cmd_ack", 1).await;
    let first = stamps().await[0];
    for _ in 0..2 {
        let before = stamps().await[0];
        p.publish(ACK, ack).await;
        // Each ACK commits in its own batch: wait until this one moved updated_at.
        support::eventually("updated_at to move", Duration::from_secs(15), || async {
            let now = stamps().await[0];
            if now.1 > before.1 {
                Ok(now)
            } else {
                Err(now)
            }
        })
        .await;
    }
    let last = stamps().await;
    assert_eq!(last.len(), 1, "one row for three ACKs");
    assert_eq!(last[0].0, first.0, "created_at stays");
    assert!(last[0].1 > first.1, "updated_at moves");
    let row: Vec<(String, String, String, bool, Option<String>, String)> = p
        .db
        .fetch_all("select tenant_id, device_id, cmd_id, ok, err, payload->>'cmd_id' from cmd_ack")
        .await;
    assert_eq!(
        row,
        vec![(
            "test_alpha".into(),
            "device123".into(),
            "01HQZC5K3M8YBQWER7TXZ9V2P3".into(),
            true,
            None,
            "01HQZC5K3M8YBQWER7TXZ9V2P3".into()
        )]
    );
    let summary = p.stop().await;
    assert_eq!(summary.acknowledged, 3);
}

/// Item 5: out-of-order timestamps are all stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_timestamps_are_all_stored() {
    let p = TestPipeline::spawn("out_of_order").await;
    for minute in ["02", "01", "03"] {
        let payload = format!(
            r#"{{"schema":"v1","ts":"2025-10-07T15:{minute}:00Z","points":[{{"name":"temp","v":1}}]}}"#
        );
        p.publish(TELEM, payload).await;
    }
    p.wait_count("select count(*) from ts_measure", 3).await;
    let minutes: Vec<(String,)> = p
        .db
        .fetch_all("select to_char(ts at time zone 'UTC', 'HH24:MI') from ts_measure order by ts")
        .await;
    assert_eq!(
        minutes,
        vec![("15:01".into(),), ("15:02".into(),), ("15:03".into(),)]
    );
    p.stop().await;
}

/// The session outlives the runner: messages published while it is down
/// wait in the broker and are stored when it comes back (same client id,
/// clean start off, session expiry).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_published_while_the_runner_is_down_are_stored_when_it_returns() {
    let mut p = TestPipeline::spawn("persistent_session").await;
    let message = |minute: u32| {
        format!(
            r#"{{"schema":"v1","ts":"2025-10-07T15:{minute:02}:00Z","points":[{{"name":"temp","v":{minute}}}]}}"#
        )
    };
    p.publish(TELEM, message(0)).await;
    p.wait_count("select count(*) from ts_measure", 1).await;
    let first = p.stop_runner().await;
    assert_eq!((first.received, first.acknowledged), (1, 1));

    for minute in 1..=5 {
        p.publish(TELEM, message(minute)).await;
    }
    p.start_runner().await;
    p.wait_count("select count(*) from ts_measure", 6).await;
    let second = p.stop().await;
    assert_eq!(
        second.received, 5,
        "exactly the queued messages are redelivered"
    );
    assert_eq!(second.acknowledged, 5);
}
