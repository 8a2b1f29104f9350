//! What both clients share: options from a URL, client ids, and the
//! connection status their event-loop tasks publish and `connect` waits on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rumqttc::v5::MqttOptions;
use tokio::sync::watch;

/// Largest packet either client sends or accepts (and announces to the
/// broker as its Maximum Packet Size).
pub const MAX_PACKET_SIZE: u32 = 16 * 1024 * 1024;

/// How long `connect` waits for the broker (and, for a Subscriber, SUBACK).
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause between reconnect attempts, so a stopped broker is not hammered.
pub(super) const RECONNECT_DELAY: Duration = Duration::from_millis(100);

/// Requests rumqttc buffers between the test and its event loop.
pub(super) const REQUEST_CHANNEL_CAPACITY: usize = 1024;

/// Makes client ids from [`client_id`] unique within the process.
static NEXT_CLIENT: AtomicU64 = AtomicU64::new(0);

/// A client id unique among live processes: `{prefix}-{pid}-{n}`. Brokers
/// disconnect an older client when a newer one takes its id, so tests that
/// share the machine's broker must not reuse ids.
pub fn client_id(prefix: &str) -> String {
    let n = NEXT_CLIENT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// The connection as its event-loop task last saw it.
#[derive(Clone, Debug)]
pub(super) struct Status {
    /// CONNACKs received so far; tells a reconnect from the first connect.
    pub(super) connections: u64,
    /// Where the connection stands now.
    pub(super) link: Link,
}

impl Status {
    pub(super) fn new() -> Status {
        Status {
            connections: 0,
            link: Link::Connecting("not tried yet".to_owned()),
        }
    }
}

/// Where a connection stands.
#[derive(Clone, Debug)]
pub(super) enum Link {
    /// Not (yet, or no longer) usable; the last reason.
    Connecting(String),
    /// Connected (and, for a Subscriber, subscribed).
    Up,
    /// The broker refused something retrying will not fix.
    Failed(String),
}

/// Options shared by both clients, from an `mqtt://` (or `tcp://`) URL with
/// optional `user:password@`.
pub(super) fn options(url: &str, client_id: &str) -> MqttOptions {
    let parsed =
        url::Url::parse(url).unwrap_or_else(|e| panic!("MQTT client: bad URL {url:?}: {e}"));
    assert!(
        matches!(parsed.scheme(), "mqtt" | "tcp"),
        "MQTT client: {url:?}: only mqtt:// and tcp:// (no TLS in tests)"
    );
    let host = parsed.host_str().unwrap_or("127.0.0.1");
    let port = parsed.port().unwrap_or(1883);
    let mut options = MqttOptions::new(client_id, host, port);
    if !parsed.username().is_empty() {
        options.set_credentials(parsed.username(), parsed.password().unwrap_or(""));
    }
    options.set_max_packet_size(Some(MAX_PACKET_SIZE));
    options.set_connection_timeout(5);
    options
}

/// A CONNACK arrived: counts the connection and sets its state.
pub(super) fn connected(status: &watch::Sender<Status>, link: Link) {
    status.send_modify(|status| {
        status.connections += 1;
        status.link = link;
    });
}

pub(super) fn set_link(status: &watch::Sender<Status>, link: Link) {
    status.send_modify(|status| status.link = link);
}

/// Waits until connection number `min_connections` or a later one is `Up`
/// and returns the connection count; panics on `Failed` or after 10 s.
pub(super) async fn wait_up(
    status: &watch::Receiver<Status>,
    min_connections: u64,
    what: &str,
) -> u64 {
    let mut watching = status.clone();
    let waited = tokio::time::timeout(
        CONNECT_TIMEOUT,
        watching.wait_for(|s| {
            matches!(s.link, Link::Failed(_))
                || (matches!(s.link, Link::Up) && s.connections >= min_connections)
        }),
    )
    .await;
    match waited {
        Ok(Ok(s)) => match &s.link {
            Link::Up => s.connections,
            other => panic!("{what}: {other:?}"),
        },
        Ok(Err(_)) => panic!("{what}: event loop ended"),
        Err(_) => panic!(
            "{what}: not connected after {CONNECT_TIMEOUT:?}; last: {:?}",
            *status.borrow()
        ),
    }
}
