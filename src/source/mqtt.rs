//! The MQTT source: an MQTT 5 client with manual acknowledgement and a
//! persistent session.
//!
//! What it guarantees:
//! - A message is PUBACKed only after its rows (or its dead letter) are
//!   committed, in the order the broker sent them ([`Ledger`]).
//! - The event loop is always polled, so keep-alives flow while the
//!   pipeline is full. Backpressure reaches the broker through our Receive
//!   Maximum: unacknowledged messages are at most `receive_maximum`, and the
//!   source queue (checked at compile time to be at least that large) holds
//!   them all, so handing a message in never waits in practice.
//! - A fixed client id, `clean_start = false` and a session expiry keep the
//!   session, and the messages published meanwhile, while we are down.
//! - On shutdown it stops taking messages, keeps polling until every taken
//!   message is committed and acknowledged, then disconnects cleanly.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, Publish, SubAck, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use rumqttc::Outgoing;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use crate::backoff::backoff;
use crate::delivery::Ledger;
use crate::envelope::Envelope;
use crate::graph::plan::SourcePlan;
use crate::telemetry::{add, get, Health, SourceStats};

use super::admit::{admit, Admission};

/// Capacity of rumqttc's request channel (PUBACKs, SUBSCRIBE, DISCONNECT).
const REQUEST_CHANNEL: usize = 4096;

/// Longest pause between reconnection attempts.
const MAX_RECONNECT_BACKOFF: Duration = Duration::from_secs(10);

/// Where the source hands envelopes.
#[derive(Debug)]
pub struct SourceOutputs {
    /// The first stage.
    pub next: mpsc::Sender<Envelope>,
    /// The dead-letter sink (bad topics, oversized payloads).
    pub dead: mpsc::Sender<Envelope>,
}

/// Why the source stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The pipeline behind the source stopped taking messages.
    #[error("the pipeline stopped taking messages (a stage or sink task ended)")]
    PipelineClosed,
}

/// The MQTT source of one pipeline.
pub struct MqttSource<'a> {
    plan: &'a SourcePlan,
    /// Times the source output was found full (warned every 10 000th).
    full_warnings: AtomicU64,
    stats: Arc<SourceStats>,
    health: Arc<Health>,
    ledger: Arc<Ledger<Publish>>,
}

fn qos(level: u8) -> QoS {
    match level {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

impl<'a> MqttSource<'a> {
    /// A source for `plan`, counting into `stats` and reporting its
    /// connection to `health`.
    pub fn new(plan: &'a SourcePlan, stats: Arc<SourceStats>, health: Arc<Health>) -> Self {
        MqttSource {
            plan,
            full_warnings: AtomicU64::new(0),
            stats,
            health,
            ledger: Ledger::new(),
        }
    }

    /// Messages taken but not yet acknowledged.
    pub fn ledger(&self) -> Arc<Ledger<Publish>> {
        self.ledger.clone()
    }

    fn options(&self) -> MqttOptions {
        let m = &self.plan.mqtt;
        let mut options = MqttOptions::new(m.client_id.clone(), m.host.clone(), m.port);
        options
            .set_keep_alive(m.keep_alive)
            .set_clean_start(false)
            .set_session_expiry_interval(Some(m.session_expiry_secs))
            .set_receive_maximum(Some(m.receive_maximum))
            .set_max_packet_size(Some(m.max_packet_bytes))
            .set_manual_acks(true);
        if let Some((user, password)) = &m.credentials {
            options.set_credentials(user.clone(), password.expose().to_string());
        }
        options
    }

    /// Runs until `shutdown` and a complete drain (or `drain_timeout`).
    ///
    /// One task polls the event loop and queues the PUBACKs, so that a
    /// connection loss and the PUBACKs queued for it are seen in order: an
    /// acknowledgement released before a disconnect belongs to the old
    /// connection and is dropped (rumqttc also drops those already in its
    /// request channel), never sent on the new one; the broker redelivers
    /// those messages and the sinks store them once.
    pub async fn run(
        self,
        outputs: SourceOutputs,
        shutdown: CancellationToken,
        drain_timeout: Duration,
    ) -> Result<(), SourceError> {
        let m = &self.plan.mqtt;
        let (client, mut eventloop) = AsyncClient::new(self.options(), REQUEST_CHANNEL);
        let mut outputs = Some(outputs);
        // PUBACKs released by the ledger, waiting for room in the request
        // channel; bounded by the messages in flight.
        let mut backlog: VecDeque<Publish> = VecDeque::new();
        let mut released_all = false;
        let mut drain: Option<Drain> = None;
        let mut subscribed_once = false;
        let mut failures: u32 = 0;
        let mut result = Ok(());
        let far = || Instant::now() + Duration::from_secs(86_400);
        tracing::info!(
            broker = %format!("{}:{}", m.host, m.port), client_id = %m.client_id,
            receive_maximum = m.receive_maximum, "mqtt source starting"
        );
        loop {
            self.queue_acks(&client, &mut backlog);
            if outputs.is_none() && released_all && backlog.is_empty() {
                break;
            }
            tokio::select! {
                _ = shutdown.cancelled(), if outputs.is_some() => {
                    outputs = None;
                    drain = Some(self.start_drain(drain_timeout));
                }
                ready = self.ledger.next_ready(), if backlog.is_empty() && !released_all => {
                    match ready {
                        Some(ready) => backlog.extend(ready),
                        None => released_all = true,
                    }
                }
                _ = sleep_until(drain.as_ref().map_or_else(far, |d| d.deadline)), if drain.is_some() => {
                    tracing::warn!(
                        unacknowledged = self.ledger.in_flight(),
                        "drain timed out; unacknowledged messages stay with the broker for redelivery"
                    );
                    break;
                }
                event = eventloop.poll() => match event {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                        failures = 0;
                        self.ledger.new_epoch();
                        add(&self.stats.connects, 1);
                        self.health.set_broker_up(true);
                        if !ack.session_present {
                            self.health.set_subscribed(false);
                        }
                        tracing::info!(session_present = ack.session_present, "connected to broker");
                        if !ack.session_present || !subscribed_once {
                            subscribed_once = true;
                            self.subscribe(&client);
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(ack))) => self.check_suback(&ack),
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        if let Some(out) = &outputs {
                            if self.accept(publish, out).await.is_err() {
                                result = Err(SourceError::PipelineClosed);
                                outputs = None;
                                drain = Some(self.start_drain(drain_timeout));
                            }
                        }
                    }
                    Ok(Event::Incoming(Packet::Disconnect(d))) => {
                        tracing::warn!(reason = ?d.reason_code, "broker sent DISCONNECT");
                    }
                    Ok(_) => {}
                    Err(e) => {
                        // Everything released so far belongs to the lost
                        // connection: never acknowledge it on the next one.
                        self.ledger.new_epoch();
                        let dropped = backlog.len();
                        backlog.clear();
                        self.health.set_broker_up(false);
                        let wait = backoff(failures, MAX_RECONNECT_BACKOFF);
                        failures = failures.saturating_add(1);
                        tracing::warn!(
                            error = %e, retry_in_ms = wait.as_millis() as u64,
                            unacknowledged = self.ledger.in_flight() + dropped,
                            "mqtt connection lost; reconnecting (unacknowledged messages will be redelivered)"
                        );
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = shutdown.cancelled(), if outputs.is_some() => {}
                        }
                    }
                }
            }
        }
        self.health.set_broker_up(false);
        disconnect(&client, &mut eventloop).await;
        let acknowledged = get(&self.stats.acked);
        if let Some(drain) = drain {
            tracing::info!(
                drained = acknowledged - drain.acked_before,
                in_flight_at_stop = drain.in_flight,
                "drained: committed and acknowledged"
            );
        }
        tracing::info!(
            received = get(&self.stats.received),
            acknowledged,
            unacknowledged = get(&self.stats.received).saturating_sub(acknowledged),
            in_flight = self.ledger.in_flight() + backlog.len(),
            "mqtt source stopped"
        );
        result
    }

    /// Stops taking messages; the ledger now only empties.
    fn start_drain(&self, timeout: Duration) -> Drain {
        self.ledger.close();
        let drain = Drain {
            deadline: Instant::now() + timeout,
            acked_before: get(&self.stats.acked),
            in_flight: self.ledger.in_flight(),
        };
        tracing::info!(
            in_flight = drain.in_flight,
            timeout_secs = timeout.as_secs(),
            "stopping: taking no new messages, draining"
        );
        drain
    }

    /// Queues released PUBACKs while the request channel has room; the
    /// rest wait for the event loop to make room.
    fn queue_acks(&self, client: &AsyncClient, backlog: &mut VecDeque<Publish>) {
        while let Some(publish) = backlog.front() {
            if client.try_ack(publish).is_err() {
                break;
            }
            backlog.pop_front();
            add(&self.stats.acked, 1);
        }
    }

    /// Queues the SUBSCRIBE for every configured filter.
    fn subscribe(&self, client: &AsyncClient) {
        let filters: Vec<Filter> = self
            .plan
            .mqtt
            .subscriptions
            .iter()
            .map(|(f, q)| Filter::new(f.clone(), qos(*q)))
            .collect();
        if let Err(e) = client.try_subscribe_many(filters) {
            tracing::error!(error = %e, "cannot queue SUBSCRIBE");
        }
    }

    /// Logs each subscription's outcome; readiness needs at least one grant.
    fn check_suback(&self, ack: &SubAck) {
        for (code, (filter, _)) in ack.return_codes.iter().zip(&self.plan.mqtt.subscriptions) {
            match code {
                SubscribeReasonCode::Success(q) => {
                    self.health.set_subscribed(true);
                    tracing::info!(filter = %filter, granted_qos = ?q, "subscribed");
                }
                other => {
                    tracing::error!(filter = %filter, code = ?other, "subscription refused by the broker")
                }
            }
        }
    }

    /// Turns one PUBLISH into an envelope and hands it in (or straight to
    /// the dead-letter sink when its topic or size is refused).
    async fn accept(&self, publish: Publish, out: &SourceOutputs) -> Result<(), ()> {
        add(&self.stats.received, 1);
        let token = self.ledger.register(Publish {
            dup: false,
            qos: publish.qos,
            retain: false,
            topic: Bytes::new(),
            pkid: publish.pkid,
            payload: Bytes::new(),
            properties: None,
        });
        let topic: Arc<str> = Arc::from(String::from_utf8_lossy(&publish.topic).as_ref());
        let (channel, envelope) = match admit(self.plan, topic, publish.payload, token) {
            Admission::Next(envelope) => (&out.next, envelope),
            Admission::DeadLetter(envelope) => (&out.dead, envelope),
        };
        self.stats.count_type(&envelope.captures);
        match channel.try_send(envelope) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(envelope)) => {
                // Only QoS 0 floods get here: QoS 1/2 messages in flight are
                // bounded by our Receive Maximum, which the queue holds.
                if self.full_warnings.fetch_add(1, Ordering::Relaxed) % 10_000 == 0 {
                    tracing::warn!(
                        "QUEUE source output full: more messages in flight than receive_maximum \
                         (QoS 0 subscriptions?); waiting"
                    );
                }
                channel.send(envelope).await.map_err(|_| ())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(()),
        }
    }
}

/// What a drain started with, for its deadline and its closing log line.
struct Drain {
    deadline: Instant,
    acked_before: u64,
    in_flight: usize,
}

/// Sends DISCONNECT after every queued PUBACK and waits (bounded) until it
/// is written, so the broker keeps our session and sees a clean stop.
///
/// After DISCONNECT it keeps reading until the broker closes the connection:
/// closing our end while the broker's messages are still arriving would
/// reset the connection, and the broker would discard the PUBACKs (and the
/// DISCONNECT) it had not read yet. Messages read meanwhile are not taken,
/// so they stay in the session for the next run.
async fn disconnect(client: &AsyncClient, eventloop: &mut EventLoop) {
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let mut queued = false;
        loop {
            if !queued {
                queued = client.try_disconnect().is_ok();
            }
            match eventloop.poll().await {
                Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
                Err(_) => return,
                Ok(_) => {}
            }
        }
        // DISCONNECT is written; wait for the broker to close.
        while eventloop.poll().await.is_ok() {}
    })
    .await;
}
