//! The [`Publisher`]: QoS 1 publishes that return only after the broker's
//! PUBACK, and the event-loop task that matches PUBACKs to publishes (see
//! the `mqtt` module doc for how).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::{Packet, PubAck, PubAckReason};
use rumqttc::v5::mqttbytes::{valid_topic, QoS};
use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop, Request};
use rumqttc::Outgoing;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::link::{
    connected, options, set_link, wait_up, Link, Status, RECONNECT_DELAY, REQUEST_CHANNEL_CAPACITY,
};

/// How long a publish may wait for its PUBACK.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// Extra allowance per message in `publish_many`, so big bursts get time.
const ACK_TIME_PER_MESSAGE: Duration = Duration::from_millis(1);

/// QoS 1 publishes the Publisher keeps on the wire at once (the broker's
/// Receive Maximum may lower it); also sizes rumqttc's packet-id table.
const MAX_INFLIGHT: u16 = 1024;

/// Completes one publish with `Ok` or the broker's refusal.
type AckSender = oneshot::Sender<Result<(), String>>;

/// Who waits for which PUBACK (see the module doc).
#[derive(Default)]
struct AckBook {
    /// Waiters whose publish is queued but not yet written, oldest first.
    unassigned: VecDeque<AckSender>,
    /// Waiters whose publish is on the wire, by packet id.
    inflight: HashMap<u16, AckSender>,
}

impl AckBook {
    /// rumqttc wrote a publish with this packet id.
    fn written(&mut self, pkid: u16) {
        // 0 is QoS 0 (never ours); a known id is a retransmission.
        if pkid == 0 || self.inflight.contains_key(&pkid) {
            return;
        }
        if let Some(waiter) = self.unassigned.pop_front() {
            self.inflight.insert(pkid, waiter);
        }
    }

    /// The broker acknowledged a publish.
    fn acked(&mut self, ack: &PubAck) {
        let Some(waiter) = self.inflight.remove(&ack.pkid) else {
            return;
        };
        let outcome = match ack.reason {
            PubAckReason::Success | PubAckReason::NoMatchingSubscribers => Ok(()),
            reason => Err(format!("broker answered PUBACK {reason:?}")),
        };
        // The publisher may have stopped waiting (timeout); nothing to do.
        let _ = waiter.send(outcome);
    }
}

/// A test's MQTT publisher: QoS 1, and every publish call returns only
/// after the broker's PUBACK.
pub struct Publisher {
    /// Hands publishes to the event loop.
    client: AsyncClient,
    /// Shared with the event-loop task, which assigns and completes waiters;
    /// a std `Mutex` because it is never held across an `.await`.
    acks: Arc<Mutex<AckBook>>,
    /// Held while queueing waiters and sending their publishes, so that
    /// waiters and requests enter their queues in the same order even with
    /// concurrent callers. A tokio mutex, as sending may wait for room.
    send_order: tokio::sync::Mutex<()>,
    /// Set when a timeout interrupted sending, after which waiters and
    /// requests may no longer line up; later publishes refuse to run.
    broken: AtomicBool,
    /// Connection state, for waiting on connect and for error messages.
    status: watch::Receiver<Status>,
    /// The event-loop task; aborted on drop.
    task: JoinHandle<()>,
    /// For messages.
    client_id: String,
}

impl Publisher {
    /// Connects (clean session) and waits for the broker's CONNACK.
    pub async fn connect(url: &str, client_id: &str) -> Publisher {
        let mut options = options(url, client_id);
        options.set_outgoing_inflight_upper_limit(MAX_INFLIGHT);
        let (client, eventloop) = AsyncClient::new(options, REQUEST_CHANNEL_CAPACITY);
        let acks = Arc::new(Mutex::new(AckBook::default()));
        let (status_tx, status) = watch::channel(Status::new());
        let task = tokio::spawn(drive_publisher(eventloop, acks.clone(), status_tx));
        let publisher = Publisher {
            client,
            acks,
            send_order: tokio::sync::Mutex::new(()),
            broken: AtomicBool::new(false),
            status,
            task,
            client_id: client_id.to_owned(),
        };
        wait_up(
            &publisher.status,
            1,
            &format!("Publisher {client_id} at {url}"),
        )
        .await;
        publisher
    }

    /// Publishes at QoS 1 and returns once the broker has acknowledged it.
    /// Panics if the broker refuses it or no PUBACK comes within 30 s.
    pub async fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.publish_many([(topic, payload)]).await;
    }

    /// Publishes all messages at QoS 1, pipelined and in order, and returns
    /// once every one is acknowledged; for bursts.
    pub async fn publish_many<I, T, P>(&self, messages: I)
    where
        I: IntoIterator<Item = (T, P)>,
        T: Into<String>,
        P: Into<Vec<u8>>,
    {
        let messages: Vec<(String, Vec<u8>)> = messages
            .into_iter()
            .map(|(topic, payload)| (topic.into(), payload.into()))
            .collect();
        let count = messages.len();
        let id = &self.client_id;
        assert!(
            !self.broken.load(Ordering::Relaxed),
            "Publisher {id}: unusable after an earlier publish timed out"
        );
        for (topic, _) in &messages {
            assert!(
                !topic.is_empty() && valid_topic(topic),
                "Publisher {id}: {topic:?} is not a topic name one can publish to"
            );
        }

        let limit = ACK_TIMEOUT + ACK_TIME_PER_MESSAGE * u32::try_from(count).unwrap_or(u32::MAX);
        let (mut sent, mut acked) = (0, 0);
        let outcome = tokio::time::timeout(limit, async {
            let mut waiters = Vec::with_capacity(count);
            {
                let _order = self.send_order.lock().await;
                for (topic, payload) in messages {
                    waiters.push((topic.clone(), self.send(topic, payload).await?));
                    sent += 1;
                }
            }
            for (i, (topic, waiter)) in waiters.into_iter().enumerate() {
                match waiter.await {
                    Ok(Ok(())) => acked += 1,
                    Ok(Err(reason)) => {
                        return Err(format!("message {i} of {count} to {topic}: {reason}"))
                    }
                    Err(_) => return Err("event loop stopped".to_owned()),
                }
            }
            Ok(())
        })
        .await;
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("Publisher {id}: {e}"),
            Err(_) => {
                self.broken.store(true, Ordering::Relaxed);
                panic!(
                    "Publisher {id}: of {count} publish(es), {sent} sent and {acked} acknowledged \
                     within {limit:?} (connection: {:?})",
                    self.status.borrow().link
                );
            }
        }
    }

    /// Queues a waiter, then the publish; call with `send_order` held.
    async fn send(
        &self,
        topic: String,
        payload: Vec<u8>,
    ) -> Result<oneshot::Receiver<Result<(), String>>, String> {
        let (tx, rx) = oneshot::channel();
        lock(&self.acks).unassigned.push_back(tx);
        if let Err(e) = self
            .client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
        {
            // Not sent, so the newest waiter (ours: we hold send_order) goes.
            lock(&self.acks).unassigned.pop_back();
            return Err(format!("cannot hand the publish to the event loop: {e}"));
        }
        Ok(rx)
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The Publisher's event loop: keeps the connection, assigns and completes
/// PUBACK waiters, and keeps unacknowledged publishes across reconnects.
async fn drive_publisher(
    mut eventloop: EventLoop,
    acks: Arc<Mutex<AckBook>>,
    status: watch::Sender<Status>,
) {
    // What rumqttc took back after a connection error; handed back to it
    // after the next CONNACK (it would drop it on a fresh session).
    let mut unsent: Vec<Request> = Vec::new();
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                eventloop.pending.extend(unsent.drain(..));
                connected(&status, Link::Up);
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => lock(&acks).written(pkid),
            Ok(Event::Incoming(Packet::PubAck(ack))) => lock(&acks).acked(&ack),
            Ok(_) => {}
            Err(ConnectionError::RequestsDone) => return,
            Err(e) => {
                unsent.extend(eventloop.pending.drain(..));
                set_link(&status, Link::Connecting(e.to_string()));
                tokio::time::sleep(RECONNECT_DELAY).await;
            }
        }
    }
}

/// Locks the book; a panic elsewhere cannot leave it half-updated, so a
/// poisoned lock is still good to use.
fn lock(acks: &Mutex<AckBook>) -> MutexGuard<'_, AckBook> {
    acks.lock().unwrap_or_else(PoisonError::into_inner)
}
