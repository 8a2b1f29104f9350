//! The publishers: `--connections` MQTT 5 clients (rumqttc 0.25 `v5`), each
//! sending its devices' share of the load at QoS 1 and counting PUBACKs in
//! its event-loop task.
//!
//! Why counting is enough (unlike `tests/support/mqtt`, which matches every
//! PUBACK to its publish): the broker acknowledges each QoS 1 publish once,
//! and a benchmark connection never reconnects — any connection error fails
//! the run — so "PUBACKs == publishes" means the broker holds every message.
//!
//! Flow control: up to 65 535 publishes in flight per connection (less if
//! the broker's Receive Maximum says so); rumqttc's bounded request channel
//! makes `publish` wait when the event loop falls behind. With `--rate`,
//! message `i` is due `i / rate` seconds after the first publish, whichever
//! connection owns it, so the total rate is steady; how late the most late
//! message went out is reported (`max_behind_ms`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions};
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, timeout_at, Instant};

use crate::extras::Extras;
use crate::report::Report;
use crate::shape::{Clocks, Shape};

/// Largest packet sent or accepted, announced as our Maximum Packet Size.
pub const MAX_PACKET_SIZE: u32 = 16 * 1024 * 1024;
/// Publishes in flight per connection (rumqttc's upper limit; the broker's
/// Receive Maximum may lower it).
const MAX_INFLIGHT: u16 = u16::MAX;
/// Requests buffered between a sender and its event loop.
const REQUEST_CHANNEL: usize = 4096;
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One connection's counts, shared by its sender and its event-loop task.
#[derive(Default)]
struct Counters {
    /// PUBACKs with a success code (including "no matching subscribers").
    acked: AtomicU64,
    /// PUBACKs with an error code.
    refused: AtomicU64,
    /// Publishes the sender handed over; `u64::MAX` until it is done.
    expected: AtomicU64,
    /// Nanoseconds from `base` to the latest PUBACK.
    last_ack_ns: AtomicU64,
    /// Woken when every expected PUBACK is in, or the connection failed.
    done: Notify,
    /// Why the connection failed, or the first refusal; a std `Mutex`, never
    /// held across an `.await`.
    failure: Mutex<Option<String>>,
}

impl Counters {
    fn settled(&self) -> bool {
        let answered = self.acked.load(Ordering::Acquire) + self.refused.load(Ordering::Acquire);
        answered >= self.expected.load(Ordering::Acquire)
    }

    fn fail(&self, why: String) {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(why);
        self.done.notify_one();
    }

    fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A connected publisher.
struct Connection {
    client: AsyncClient,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

/// What publishing measured.
pub struct Published {
    /// When the first message was handed to a client.
    pub first_publish: Instant,
    /// Publishes handed over, extras included.
    sent: u64,
    /// PUBACKs with a success code.
    acked: u64,
    /// PUBACKs with an error code.
    refused: u64,
    /// When the last PUBACK arrived.
    last_ack: Instant,
    /// How far a device's `ts` ran ahead of the clock, at most.
    max_lead_ms: i64,
    /// With `--rate`: the latest a message went out after its due time.
    max_behind: Duration,
    /// The broker's Receive Maximum, if it announced one.
    receive_max: Option<u16>,
    /// Connection failures and refusals.
    failures: Vec<String>,
}

impl Published {
    /// Adds the publishing figures (and failures) to `report`.
    pub fn record(&self, shape: &Shape, report: &mut Report) {
        let took = self.last_ack.saturating_duration_since(self.first_publish);
        report.set("published", self.sent);
        report.set("pubacked", self.acked);
        report.set("refused", self.refused);
        report.seconds("publish_s", took);
        report.rate("publish_msgs_per_s", self.sent, took);
        report.rate("publish_points_per_s", shape.valid_points(), took);
        report.set("max_ts_lead_ms", self.max_lead_ms);
        report.set(
            "max_behind_ms",
            format!("{:.1}", self.max_behind.as_secs_f64() * 1000.0),
        );
        report.set(
            "broker_receive_max",
            self.receive_max
                .map_or("none".to_owned(), |r| r.to_string()),
        );
        for failure in &self.failures {
            report.fail(failure.clone());
        }
        if self.acked != shape.total_publishes() {
            report.fail(format!(
                "{} of {} publishes acknowledged by the broker",
                self.acked,
                shape.total_publishes()
            ));
        }
    }
}

/// Connects every client, publishes the whole load, waits for every PUBACK
/// (until `deadline`) and disconnects.
pub async fn run(
    url: &str,
    shape: &Arc<Shape>,
    rate: Option<f64>,
    deadline: Instant,
) -> Result<Published, String> {
    let base = Instant::now();
    let mut connections = Vec::new();
    let mut receive_max = None;
    for c in 0..shape.connections {
        let id = format!("{}-pub{c}", shape.run_id);
        let (connection, max) = connect(url, &id, base).await?;
        receive_max = receive_max.or(max);
        connections.push(connection);
    }

    let first_publish = Instant::now();
    let senders: Vec<JoinHandle<Result<Sent, String>>> = connections
        .iter()
        .enumerate()
        .map(|(c, connection)| {
            let client = connection.client.clone();
            let shape = shape.clone();
            tokio::spawn(async move {
                send_share(c as u32, &client, &shape, first_publish, rate, deadline).await
            })
        })
        .collect();

    let mut published = Published {
        first_publish,
        sent: 0,
        acked: 0,
        refused: 0,
        last_ack: first_publish,
        max_lead_ms: 0,
        max_behind: Duration::ZERO,
        receive_max,
        failures: Vec::new(),
    };
    for (sender, connection) in senders.into_iter().zip(&connections) {
        let counters = &connection.counters;
        match sender.await {
            Ok(Ok(sent)) => {
                published.sent += sent.count;
                published.max_lead_ms = published.max_lead_ms.max(sent.max_lead_ms);
                published.max_behind = published.max_behind.max(sent.max_behind);
                counters.expected.store(sent.count, Ordering::Release);
            }
            Ok(Err(e)) => published.failures.push(e),
            Err(e) => published.failures.push(format!("sender task: {e}")),
        }
        // Bounded by `deadline`; a failure or the last PUBACK wakes us.
        while !counters.settled() && counters.failure().is_none() {
            if timeout_at(deadline, counters.done.notified())
                .await
                .is_err()
            {
                published
                    .failures
                    .push("deadline waiting for PUBACKs".to_owned());
                break;
            }
        }
    }

    for connection in &connections {
        let counters = &connection.counters;
        published.acked += counters.acked.load(Ordering::Acquire);
        published.refused += counters.refused.load(Ordering::Acquire);
        let last = base + Duration::from_nanos(counters.last_ack_ns.load(Ordering::Acquire));
        published.last_ack = published.last_ack.max(last);
        if let Some(failure) = counters.failure() {
            published.failures.push(failure);
        }
    }
    for connection in connections {
        // The broker has everything; a failed DISCONNECT changes nothing.
        let _ = connection.client.disconnect().await;
        if tokio::time::timeout(Duration::from_secs(2), connection.task)
            .await
            .is_err()
        {
            eprintln!("loadgen: a publisher's event loop did not stop after DISCONNECT");
        }
    }
    Ok(published)
}

/// What one connection's sender did.
struct Sent {
    count: u64,
    max_lead_ms: i64,
    max_behind: Duration,
}

/// Publishes connection `c`'s messages; connection 0 also spreads the
/// invalid payloads and the duplicated ACKs evenly among its own.
async fn send_share(
    c: u32,
    client: &AsyncClient,
    shape: &Shape,
    start: Instant,
    rate: Option<f64>,
    deadline: Instant,
) -> Result<Sent, String> {
    let topics = shape.telem_topics();
    let mut clocks = Clocks::new(shape.device_count());
    let own = if c == 0 {
        shape.messages_of(0).count()
    } else {
        0
    };
    let mut extras = Extras::new(own as u64);
    let mut sent = Sent {
        count: 0,
        max_lead_ms: 0,
        max_behind: Duration::ZERO,
    };
    for i in shape.messages_of(c) {
        if let Some(rate) = rate {
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            let now = Instant::now();
            if due > now {
                sleep_until(due).await;
            } else {
                sent.max_behind = sent.max_behind.max(now - due);
            }
        }
        if Instant::now() > deadline {
            return Err(format!("connection {c}: deadline while publishing"));
        }
        let device = shape.device_of(i);
        let payload = shape.telemetry(i, clocks.stamp(device));
        publish(client, topics[device as usize].clone(), payload).await?;
        sent.count += 1;
        if c == 0 {
            sent.count += extras.after_message(client, shape, &mut clocks).await?;
        }
    }
    if c == 0 {
        sent.count += extras.rest(client, shape, &mut clocks).await?;
    }
    sent.max_lead_ms = clocks.max_lead_ms;
    Ok(sent)
}

/// Hands one QoS 1 publish to the event loop (waits while its channel is full).
pub async fn publish(client: &AsyncClient, topic: String, payload: Vec<u8>) -> Result<(), String> {
    client
        .publish(topic, QoS::AtLeastOnce, false, payload)
        .await
        .map_err(|e| format!("cannot hand a publish to the event loop: {e}"))
}

/// Options every benchmark client shares: clean session, MQTT 5, 16 MiB
/// packets, from an `mqtt://host:port` URL.
pub fn options(url: &str, client_id: &str) -> Result<MqttOptions, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("bad MQTT URL {url:?}: {e}"))?;
    if !matches!(parsed.scheme(), "mqtt" | "tcp") {
        return Err(format!("{url:?}: only mqtt:// and tcp://"));
    }
    let host = parsed.host_str().unwrap_or("127.0.0.1");
    let mut options = MqttOptions::new(client_id, host, parsed.port().unwrap_or(1883));
    options
        .set_clean_start(true)
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(Some(MAX_PACKET_SIZE))
        .set_connection_timeout(CONNECT_TIMEOUT.as_secs());
    Ok(options)
}

/// Connects one publisher and waits for its CONNACK; returns it with the
/// broker's Receive Maximum.
async fn connect(
    url: &str,
    client_id: &str,
    base: Instant,
) -> Result<(Connection, Option<u16>), String> {
    let mut options = options(url, client_id)?;
    options.set_outgoing_inflight_upper_limit(MAX_INFLIGHT);
    let (client, eventloop) = AsyncClient::new(options, REQUEST_CHANNEL);
    let counters = Arc::new(Counters {
        expected: AtomicU64::new(u64::MAX),
        ..Counters::default()
    });
    let (connected_tx, connected) = oneshot::channel();
    let task = tokio::spawn(drive(eventloop, counters.clone(), base, connected_tx));
    let receive_max = match tokio::time::timeout(CONNECT_TIMEOUT, connected).await {
        Ok(Ok(Ok(receive_max))) => receive_max,
        Ok(Ok(Err(e))) => return Err(format!("publisher {client_id} at {url}: {e}")),
        Ok(Err(_)) => return Err(format!("publisher {client_id}: event loop ended")),
        Err(_) => return Err(format!("publisher {client_id}: no CONNACK from {url}")),
    };
    Ok((
        Connection {
            client,
            counters,
            task,
        },
        receive_max,
    ))
}

/// A publisher's event loop: counts PUBACKs until DISCONNECT; stops at the
/// first connection error (a benchmark does not reconnect).
async fn drive(
    mut eventloop: EventLoop,
    counters: Arc<Counters>,
    base: Instant,
    connected: oneshot::Sender<Result<Option<u16>, String>>,
) {
    let mut connected = Some(connected);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                let receive_max = ack.properties.and_then(|p| p.receive_max);
                if let Some(tx) = connected.take() {
                    let _ = tx.send(Ok(receive_max));
                }
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                match ack.reason {
                    PubAckReason::Success | PubAckReason::NoMatchingSubscribers => {
                        counters.acked.fetch_add(1, Ordering::AcqRel);
                    }
                    reason => {
                        counters.refused.fetch_add(1, Ordering::AcqRel);
                        let mut failure = counters
                            .failure
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner);
                        failure.get_or_insert(format!("broker refused a publish: {reason:?}"));
                    }
                }
                let ns = u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX);
                counters.last_ack_ns.store(ns, Ordering::Release);
                if counters.settled() {
                    counters.done.notify_one();
                }
            }
            Ok(Event::Incoming(Packet::Disconnect(d))) => {
                counters.fail(format!("broker disconnected us: {:?}", d.reason_code));
                return;
            }
            Ok(_) => {}
            Err(ConnectionError::RequestsDone) => return,
            Err(e) => {
                if let Some(tx) = connected.take() {
                    let _ = tx.send(Err(e.to_string()));
                }
                // After our own DISCONNECT the broker closes the socket.
                if counters.settled() {
                    return;
                }
                counters.fail(format!("connection lost: {e}"));
                return;
            }
        }
    }
}
