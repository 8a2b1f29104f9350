//! The [`Subscriber`]: one topic filter at QoS 1, (re)subscribed on every
//! fresh session, deliveries handed over in arrival order.

use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::{Packet, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop};
use rumqttc::Outgoing;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::link::{
    connected, options, set_link, wait_up, Link, Status, CONNECT_TIMEOUT, RECONNECT_DELAY,
    REQUEST_CHANNEL_CAPACITY,
};

/// Messages a Subscriber buffers before it stops reading from the broker.
const SUBSCRIBER_BUFFER: usize = 100_000;

/// Session Expiry Interval of a persistent Subscriber, in seconds.
const SESSION_EXPIRY_SECS: u32 = 3600;

/// A test's MQTT subscriber to one topic filter, at QoS 1.
pub struct Subscriber {
    /// For DISCONNECT.
    client: AsyncClient,
    /// What the broker delivered: `(topic, payload)`, in arrival order.
    messages: mpsc::Receiver<(String, Vec<u8>)>,
    /// Connection state; `Up` means subscribed.
    status: watch::Receiver<Status>,
    /// Connections seen subscribed by the last wait, so that
    /// `wait_resubscribed` can tell a new connection from the old one.
    confirmed: u64,
    /// The event-loop task; aborted on drop.
    task: JoinHandle<()>,
    /// For messages.
    client_id: String,
}

impl Subscriber {
    /// Connects with a clean session, subscribes to `filter` at QoS 1 and
    /// returns once the broker has confirmed the subscription.
    pub async fn connect(url: &str, client_id: &str, filter: &str) -> Subscriber {
        Self::open(url, client_id, filter, false).await
    }

    /// Like [`Subscriber::connect`] but with a persistent session (clean
    /// start off, session expiry 1 h): after a [`Subscriber::disconnect`],
    /// the broker queues QoS 1 messages for this client id, and a later
    /// `connect_persistent` with the same id receives them.
    pub async fn connect_persistent(url: &str, client_id: &str, filter: &str) -> Subscriber {
        Self::open(url, client_id, filter, true).await
    }

    async fn open(url: &str, client_id: &str, filter: &str, persistent: bool) -> Subscriber {
        let mut options = options(url, client_id);
        if persistent {
            options.set_clean_start(false);
            options.set_session_expiry_interval(Some(SESSION_EXPIRY_SECS));
        }
        let (client, eventloop) = AsyncClient::new(options, REQUEST_CHANNEL_CAPACITY);
        let (messages_tx, messages) = mpsc::channel(SUBSCRIBER_BUFFER);
        let (status_tx, status) = watch::channel(Status::new());
        let task = tokio::spawn(drive_subscriber(
            eventloop,
            client.clone(),
            filter.to_owned(),
            messages_tx,
            status_tx,
        ));
        let what = format!("Subscriber {client_id} at {url}");
        let confirmed = wait_up(&status, 1, &what).await;
        Subscriber {
            client,
            messages,
            status,
            confirmed,
            task,
            client_id: client_id.to_owned(),
        }
    }

    /// The next message, or `None` if none arrives within `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<(String, Vec<u8>)> {
        tokio::time::timeout(timeout, self.messages.recv())
            .await
            .ok()
            .flatten()
    }

    /// Waits (up to 10 s) until the subscriber has reconnected and is
    /// subscribed again since it was last seen subscribed. After a broker
    /// restart, call this before publishing what a clean-session subscriber
    /// must see: until it has subscribed again, the broker drops such
    /// messages. (Only waiting for "subscribed" could pass on the state from
    /// before the restart, if the client has not yet noticed the drop.)
    pub async fn wait_resubscribed(&mut self) {
        let what = format!("Subscriber {} (reconnecting)", self.client_id);
        self.confirmed = wait_up(&self.status, self.confirmed + 1, &what).await;
    }

    /// Disconnects politely (DISCONNECT, then close). A persistent session
    /// stays on the broker, which queues QoS 1 messages for it.
    pub async fn disconnect(mut self) {
        if self.client.disconnect().await.is_ok() {
            // The task ends once DISCONNECT is written; bounded regardless.
            let _ = tokio::time::timeout(CONNECT_TIMEOUT, &mut self.task).await;
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The Subscriber's event loop: (re)subscribes on every fresh session and
/// forwards deliveries. Ends on DISCONNECT or when the Subscriber is gone.
async fn drive_subscriber(
    mut eventloop: EventLoop,
    client: AsyncClient,
    filter: String,
    messages: mpsc::Sender<(String, Vec<u8>)>,
    status: watch::Sender<Status>,
) {
    loop {
        match eventloop.poll().await {
            // The broker kept our session, subscription included.
            Ok(Event::Incoming(Packet::ConnAck(ack))) if ack.session_present => {
                connected(&status, Link::Up);
            }
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                let link = match client.try_subscribe(filter.clone(), QoS::AtLeastOnce) {
                    Ok(()) => Link::Connecting("waiting for SUBACK".to_owned()),
                    Err(e) => Link::Failed(format!("cannot subscribe to {filter}: {e}")),
                };
                connected(&status, link);
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                let refused = ack
                    .return_codes
                    .iter()
                    .find(|code| !matches!(code, SubscribeReasonCode::Success(_)));
                set_link(
                    &status,
                    match refused {
                        None => Link::Up,
                        Some(code) => Link::Failed(format!("subscription to {filter}: {code:?}")),
                    },
                );
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                let topic = String::from_utf8_lossy(&publish.topic).into_owned();
                if messages
                    .send((topic, publish.payload.to_vec()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(ConnectionError::RequestsDone) => return,
            Err(e) => {
                set_link(&status, Link::Connecting(e.to_string()));
                tokio::time::sleep(RECONNECT_DELAY).await;
            }
        }
    }
}
