//! `TcpProxy`: a loopback TCP proxy that a test can cut and restore, to put a
//! network failure between the code under test and a real server (here, the
//! runner and PostgreSQL).
//!
//! Why: stopping the shared PostgreSQL would break every other test on the
//! machine, and a mock would prove nothing about the real client library.
//! The proxy fails only the connections that go through it, and the way a
//! network does: open connections are reset mid-transaction, and new ones
//! are accepted and closed at once, so the client sees I/O errors, not a
//! polite refusal it could special-case.
//!
//! Guarantees:
//! - `start` returns once the proxy listens on `127.0.0.1:<port>`;
//! - `cut` returns once every connection open through the proxy is closed
//!   (reset, with `SO_LINGER` 0), and until `restore` every new connection is
//!   closed as soon as it is accepted;
//! - `connections` counts the connections forwarded so far, so a test can
//!   show that the client opened new ones after `restore`;
//! - dropping the proxy closes the listener and every connection.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long `cut` waits for the forwarding tasks to close their sockets.
const CUT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long connecting to the target may take before the client's
/// connection is closed (the target is on loopback: this is generous).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A running proxy; see the module doc.
pub struct TcpProxy {
    /// The loopback port clients connect to.
    port: u16,
    /// Where connections are forwarded.
    target: SocketAddr,
    /// Shared with the accept loop and every forwarding task.
    shared: Arc<Shared>,
    /// The accept loop; aborted on drop.
    accept_task: JoinHandle<()>,
}

/// State the test and the proxy's tasks share.
struct Shared {
    /// `true` while cut. A watch channel, so every forwarding task wakes up
    /// the moment it flips, and a task started during a cut sees it at once.
    cut: watch::Sender<bool>,
    /// Connections forwarded to the target (accepted while not cut).
    forwarded: AtomicU64,
    /// Connections accepted during a cut and closed at once.
    refused: AtomicU64,
    /// Forwarding tasks still holding their sockets; `cut` waits for 0.
    open: AtomicU64,
    /// Cancelled on drop: every task closes its sockets and ends.
    stop: CancellationToken,
}

impl TcpProxy {
    /// Starts a proxy on a free loopback port, forwarding to `target`
    /// (e.g. `"127.0.0.1:5432"`).
    pub async fn start(target: &str) -> TcpProxy {
        let target: SocketAddr = target
            .parse()
            .unwrap_or_else(|e| panic!("TcpProxy: target {target:?} is not host:port: {e}"));
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("TcpProxy: cannot bind a loopback port");
        let port = listener
            .local_addr()
            .expect("TcpProxy: bound socket has an address")
            .port();
        let shared = Arc::new(Shared {
            cut: watch::Sender::new(false),
            forwarded: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            open: AtomicU64::new(0),
            stop: CancellationToken::new(),
        });
        let accept_task = tokio::spawn(accept_loop(listener, target, shared.clone()));
        TcpProxy {
            port,
            target,
            shared,
            accept_task,
        }
    }

    /// The port clients should connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where the proxy forwards to.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// `database_url` (a `postgres://` URL) with its host and port replaced
    /// by the proxy's, so the code under test connects through it.
    pub fn url_for(&self, database_url: &str) -> String {
        let mut url = url::Url::parse(database_url)
            .unwrap_or_else(|e| panic!("TcpProxy: {database_url:?} is not a URL: {e}"));
        url.set_host(Some("127.0.0.1"))
            .expect("TcpProxy: a postgres URL can have a host");
        url.set_port(Some(self.port))
            .expect("TcpProxy: a postgres URL can have a port");
        url.to_string()
    }

    /// Resets every open connection and refuses new ones until
    /// [`TcpProxy::restore`]; returns once every connection is closed.
    pub async fn cut(&self) {
        self.shared.cut.send_replace(true);
        let deadline = Instant::now() + CUT_TIMEOUT;
        while self.shared.open.load(Ordering::SeqCst) > 0 {
            assert!(
                Instant::now() < deadline,
                "TcpProxy: {} connection(s) still open {CUT_TIMEOUT:?} after cut()",
                self.shared.open.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Forwards new connections again.
    pub fn restore(&self) {
        self.shared.cut.send_replace(false);
    }

    /// Whether the proxy is cut.
    pub fn is_cut(&self) -> bool {
        *self.shared.cut.borrow()
    }

    /// Connections forwarded to the target so far (not counting those
    /// refused during a cut): grows when the client reconnects.
    pub fn connections(&self) -> u64 {
        self.shared.forwarded.load(Ordering::SeqCst)
    }

    /// Connections accepted during a cut and closed at once: shows the
    /// client kept trying while the target was unreachable.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::SeqCst)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.shared.stop.cancel();
        self.accept_task.abort();
    }
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, shared: Arc<Shared>) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shared.stop.cancelled() => return,
        };
        let client = match accepted {
            Ok((client, _)) => client,
            // Per-connection errors (e.g. the client gave up); keep serving.
            Err(_) => continue,
        };
        // Subscribing before checking means a cut that flips right after the
        // check is still seen by the new task (`wait_for` checks the value).
        let cut = shared.cut.subscribe();
        if *cut.borrow() {
            shared.refused.fetch_add(1, Ordering::SeqCst);
            reset(client);
            continue;
        }
        shared.forwarded.fetch_add(1, Ordering::SeqCst);
        shared.open.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(forward(client, target, cut, shared.clone()));
    }
}

/// Copies bytes both ways until either side closes, the proxy is cut, or it
/// is dropped; then closes both sockets.
async fn forward(
    mut client: TcpStream,
    target: SocketAddr,
    mut cut: watch::Receiver<bool>,
    shared: Arc<Shared>,
) {
    /// Counts this task in `open` until it ends, however it ends.
    struct Open(Arc<Shared>);
    impl Drop for Open {
        fn drop(&mut self) {
            self.0.open.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let _open = Open(shared.clone());

    let connect = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target));
    let upstream = tokio::select! {
        connected = connect => connected,
        _ = cut.wait_for(|cut| *cut) => return reset(client),
        _ = shared.stop.cancelled() => return reset(client),
    };
    let Ok(Ok(mut upstream)) = upstream else {
        return reset(client);
    };
    let cut_now = tokio::select! {
        _ = copy_bidirectional(&mut client, &mut upstream) => false,
        _ = cut.wait_for(|cut| *cut) => true,
        _ = shared.stop.cancelled() => true,
    };
    if cut_now {
        reset(client);
        reset(upstream);
    }
}

/// Closes a socket with a reset (RST) rather than an orderly FIN, as a
/// failing network or a crashed peer would.
fn reset(stream: TcpStream) {
    // If the option cannot be set the socket still closes, with a FIN.
    let _ = stream.set_zero_linger();
    drop(stream);
}
