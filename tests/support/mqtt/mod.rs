//! MQTT clients for tests: a [`Publisher`] whose publishes return only once
//! the broker has acknowledged them, and a [`Subscriber`] that hands over
//! what the broker delivers.
//!
//! Why: a test that publishes and then looks in the database must know the
//! broker holds the message; rumqttc's `publish` only queues it for the event
//! loop. Both clients speak MQTT 5 (`rumqttc::v5`) and accept packets up to
//! 16 MiB, since tests send payloads over 256 KiB and rumqttc's default
//! incoming limit is 10 KiB.
//!
//! How the Publisher knows a PUBACK is for which publish: rumqttc 0.25 gives
//! no per-publish handle. Its event loop takes requests in channel order and
//! reports `Outgoing::Publish(pkid)` when it writes each one (a publish that
//! waits on a packet-id collision is reported when it is finally written, and
//! meanwhile no later request is taken), then `Incoming::PubAck(pkid)`.
//! So each publish queues a waiter in channel order; the event-loop task
//! gives the oldest waiter the packet id of the next first-time
//! `Outgoing::Publish`, and completes it on the matching PUBACK. A packet id
//! that already has a waiter is a retransmission, not a new publish.
//!
//! Reconnects: both clients reconnect by themselves (every 100 ms) when the
//! broker goes away. rumqttc drops unacknowledged and queued requests when
//! the broker starts a fresh session; the Publisher takes them back before
//! that and re-queues them after the CONNACK, so a publish racing a broker
//! restart is delivered (at least once) instead of waiting forever. The
//! Subscriber subscribes again on every fresh session.
//!
//! Every wait is bounded: connecting by 10 s, acknowledgements by 30 s (plus
//! 1 ms per message for `publish_many`).

mod link;
mod publisher;
mod subscriber;

pub use link::{client_id, MAX_PACKET_SIZE};
pub use publisher::Publisher;
pub use subscriber::Subscriber;
