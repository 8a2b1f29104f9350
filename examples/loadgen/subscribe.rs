//! The Mosquitto ceiling's receiving end: one MQTT 5 subscriber on
//! `traksense/#` at QoS 1 — like the runner's source, but acknowledging each
//! message as soon as it arrives (rumqttc's automatic PUBACK) and doing
//! nothing else — counting deliveries until it has every published message.
//!
//! Its Receive Maximum is 65 535, the most MQTT allows (the runner asks for
//! `INGEST_QUEUE_MAX`, 50 000 by default, capped the same way).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::{Packet, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop};
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;
use tokio::time::{timeout_at, Instant};

use crate::publish::options;
use crate::report::Report;
use crate::shape::Shape;

/// The filter the runner subscribes to.
const FILTER: &str = "traksense/#";
/// How long connecting and subscribing may take.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Counts shared with the event-loop task.
#[derive(Default)]
struct Received {
    /// Deliveries, duplicates included.
    count: AtomicU64,
    /// Deliveries flagged DUP (redeliveries).
    dup: AtomicU64,
    /// Nanoseconds from `base` to the latest delivery.
    last_ns: AtomicU64,
    /// Woken once `count` reaches `expected`, or on a connection error.
    done: Notify,
    /// Why the connection ended, if it did.
    error: std::sync::Mutex<Option<String>>,
}

/// A subscribed client, counting.
pub struct Subscriber {
    client: AsyncClient,
    received: Arc<Received>,
    expected: u64,
    base: Instant,
    task: JoinHandle<()>,
}

impl Subscriber {
    /// Connects, subscribes and waits for the SUBACK, so nothing published
    /// afterwards is missed.
    pub async fn start(url: &str, shape: &Shape, deadline: Instant) -> Result<Subscriber, String> {
        let mut options = options(url, &format!("{}-sub", shape.run_id))?;
        options.set_receive_maximum(Some(u16::MAX));
        let (client, eventloop) = AsyncClient::new(options, 16);
        let received = Arc::new(Received::default());
        let expected = shape.total_publishes();
        let base = Instant::now();
        let (subscribed_tx, subscribed) = oneshot::channel();
        let task = tokio::spawn(drive(
            eventloop,
            received.clone(),
            expected,
            base,
            subscribed_tx,
        ));
        client
            .subscribe(FILTER, QoS::AtLeastOnce)
            .await
            .map_err(|e| format!("subscriber: {e}"))?;
        let limit = deadline.min(Instant::now() + SUBSCRIBE_TIMEOUT);
        match timeout_at(limit, subscribed).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => return Err(format!("subscriber at {url}: {e}")),
            Ok(Err(_)) => return Err("subscriber: event loop ended".to_owned()),
            Err(_) => return Err(format!("subscriber: no SUBACK from {url}")),
        }
        Ok(Subscriber {
            client,
            received,
            expected,
            base,
            task,
        })
    }

    /// Waits (until `deadline`) for every published message and records
    /// the delivery rate from `first_publish` to the last delivery.
    pub async fn finish(self, first_publish: Instant, deadline: Instant, report: &mut Report) {
        let received = &self.received;
        while received.count.load(Ordering::Acquire) < self.expected {
            if received.error.lock().map(|e| e.is_some()).unwrap_or(true) {
                break;
            }
            if timeout_at(deadline, received.done.notified())
                .await
                .is_err()
            {
                break;
            }
        }
        let count = received.count.load(Ordering::Acquire);
        let last = self.base + Duration::from_nanos(received.last_ns.load(Ordering::Acquire));
        let took = last.saturating_duration_since(first_publish);
        report.set("delivered", count);
        report.set("delivered_dup", received.dup.load(Ordering::Acquire));
        report.seconds("deliver_s", took);
        report.rate("deliver_msgs_per_s", count, took);
        if count < self.expected {
            let why = received
                .error
                .lock()
                .ok()
                .and_then(|e| e.clone())
                .unwrap_or_else(|| "deadline".to_owned());
            report.fail(format!(
                "subscriber got {count} of {} messages ({why})",
                self.expected
            ));
        }
        let _ = self.client.disconnect().await;
        if tokio::time::timeout(Duration::from_secs(2), self.task)
            .await
            .is_err()
        {
            eprintln!("loadgen: the subscriber's event loop did not stop after DISCONNECT");
        }
    }
}

/// The subscriber's event loop: reports the SUBACK, counts deliveries.
async fn drive(
    mut eventloop: EventLoop,
    received: Arc<Received>,
    expected: u64,
    base: Instant,
    subscribed: oneshot::Sender<Result<(), String>>,
) {
    let mut subscribed = Some(subscribed);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                if publish.dup {
                    received.dup.fetch_add(1, Ordering::AcqRel);
                }
                let ns = u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX);
                received.last_ns.store(ns, Ordering::Release);
                if received.count.fetch_add(1, Ordering::AcqRel) + 1 == expected {
                    received.done.notify_one();
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                let granted = ack
                    .return_codes
                    .iter()
                    .all(|code| matches!(code, SubscribeReasonCode::Success(QoS::AtLeastOnce)));
                if let Some(tx) = subscribed.take() {
                    let _ = tx.send(if granted {
                        Ok(())
                    } else {
                        Err(format!("SUBACK {:?}", ack.return_codes))
                    });
                }
            }
            Ok(_) => {}
            Err(e) => {
                if let Some(tx) = subscribed.take() {
                    let _ = tx.send(Err(e.to_string()));
                }
                if received.count.load(Ordering::Acquire) < expected {
                    if let Ok(mut error) = received.error.lock() {
                        error.get_or_insert(e.to_string());
                    }
                    received.done.notify_one();
                }
                return;
            }
        }
    }
}
