//! `TestBroker`: a private Mosquitto for one test.
//!
//! Why: tests that stop, kill or restart the broker, or count what it queued,
//! must not touch the shared broker on 127.0.0.1:1883 that other tests and
//! other worktrees use. Each `TestBroker` is its own `mosquitto` process on a
//! free loopback port, with its config, persistence file and log in a
//! temporary directory.
//!
//! Guarantees:
//! - `start` and `restart` return only once the broker says it is running and
//!   its port accepts, or panic within a bounded time with its log;
//! - `restart` comes back on the same port with the same config and
//!   persistence directory, so persistent sessions and their queued QoS 1
//!   messages survive a `stop` (mosquitto saves them on SIGTERM) but not a
//!   `kill` (nothing is saved since the start: a crash);
//! - dropping it kills the process; if the test is panicking, the tail of the
//!   broker's log is printed first.
//!
//! The methods block the calling thread for the few milliseconds mosquitto
//! needs; tests run on a multi-threaded runtime, so that is harmless.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Where Debian puts the broker, which is not on every user's `PATH`.
const FALLBACK_BINARY: &str = "/usr/sbin/mosquitto";

/// How long a start may take before it counts as failed.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long `stop` waits after SIGTERM before it kills.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Attempts at finding a free port; another process may take the port
/// between our probe and mosquitto's bind.
const PORT_ATTEMPTS: usize = 5;

/// What mosquitto logs once all its listeners are open.
const RUNNING_MARKER: &str = " running";

/// Lines of log printed when a test panics with the broker still alive.
const LOG_TAIL_LINES: usize = 40;

/// A running (or deliberately stopped) private mosquitto.
pub struct TestBroker {
    /// The loopback port, kept across restarts so clients reconnect.
    port: u16,
    /// Config, persistence file, log and captured output; removed on drop.
    dir: TempDir,
    /// The mosquitto executable, found once.
    binary: PathBuf,
    /// The process, or `None` between `stop`/`kill` and `restart`.
    child: Option<Child>,
}

impl TestBroker {
    /// Starts a broker on a free loopback port.
    pub fn start() -> TestBroker {
        let binary = mosquitto_binary();
        let dir = tempfile::Builder::new()
            .prefix("test-broker-")
            .tempdir()
            .expect("TestBroker: cannot create a temporary directory");
        let mut last_error = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            write_config(dir.path(), port);
            match spawn_and_wait(&binary, dir.path(), port) {
                Ok(child) => {
                    return TestBroker {
                        port,
                        dir,
                        binary,
                        child: Some(child),
                    }
                }
                Err(e) => last_error = e,
            }
        }
        panic!("TestBroker: mosquitto did not start in {PORT_ATTEMPTS} attempts: {last_error}");
    }

    /// `mqtt://127.0.0.1:PORT`, for the code under test and for clients.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// The loopback port; the same after `restart`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding `mosquitto.conf`, `mosquitto.db` and the log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether the process is alive.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Stops the broker gracefully (SIGTERM), so it saves its persistence
    /// file, and waits for it to exit. Kills it if it takes over 10 s.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(None)) {
            // `kill` the program, so no libc or nix is needed for a signal.
            let sent = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            if !matches!(sent, Ok(status) if status.success()) {
                eprintln!("TestBroker: SIGTERM failed ({sent:?}); killing");
            }
            let deadline = Instant::now() + STOP_TIMEOUT;
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                sleep(Duration::from_millis(10));
            }
        }
        if matches!(child.try_wait(), Ok(None)) {
            eprintln!("TestBroker: no exit {STOP_TIMEOUT:?} after SIGTERM; killing");
            kill_and_reap(&mut child);
        }
    }

    /// Kills the broker (SIGKILL), as a crash would: nothing is saved.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_and_reap(&mut child);
        }
    }

    /// Starts the broker again on the same port, with the same config and
    /// persistence directory; stops it first if it is running.
    pub fn restart(&mut self) {
        self.stop();
        // A client's socket may briefly hold the port (TIME_WAIT is fine for
        // mosquitto, which sets SO_REUSEADDR, but a stray bind is not), so a
        // failed start is retried for a short while.
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match spawn_and_wait(&self.binary, self.dir.path(), self.port) {
                Ok(child) => {
                    self.child = Some(child);
                    return;
                }
                Err(e) if Instant::now() >= deadline => {
                    panic!("TestBroker: restart on port {} failed: {e}", self.port)
                }
                Err(_) => sleep(Duration::from_millis(100)),
            }
        }
    }

    /// The broker's log so far, for debugging a failing test.
    pub fn log(&self) -> String {
        read_lossy(&self.dir.path().join("mosquitto.log"))
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
            eprintln!(
                "TestBroker on port {}: last {} log lines:\n{}",
                self.port,
                tail.len(),
                tail.join("\n")
            );
        }
        self.kill();
    }
}

/// The mosquitto executable: `MOSQUITTO_BIN`, else `mosquitto` on `PATH`,
/// else Debian's `/usr/sbin/mosquitto`.
fn mosquitto_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("MOSQUITTO_BIN").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("mosquitto"))
            .find(|candidate| candidate.is_file())
    });
    match on_path {
        Some(path) => path,
        None if Path::new(FALLBACK_BINARY).is_file() => PathBuf::from(FALLBACK_BINARY),
        None => panic!(
            "TestBroker: mosquitto not found on PATH nor at {FALLBACK_BINARY}; \
             run scripts/services.sh"
        ),
    }
}

/// A port that was free a moment ago: bind port 0, read it, release it.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("TestBroker: cannot bind a loopback port")
}

fn write_config(dir: &Path, port: u16) {
    let dir_str = dir.display();
    // As root, mosquitto would switch to the `mosquitto` user, who cannot
    // write in our private directory; `user root` keeps it as it is. The
    // directory belongs to whoever we run as.
    let as_root = fs::metadata(dir).map(|m| m.uid() == 0).unwrap_or(false);
    let user_line = if as_root { "user root\n" } else { "" };
    let config = format!(
        "# Written by tests/support/broker.rs\n\
         {user_line}\
         listener {port} 127.0.0.1\n\
         allow_anonymous true\n\
         persistence true\n\
         persistence_location {dir_str}/\n\
         # No cap on QoS 1 messages in flight to a client; MQTT 5 clients\n\
         # still get at most their own Receive Maximum.\n\
         max_inflight_messages 0\n\
         max_queued_messages 100000\n\
         log_dest file {dir_str}/mosquitto.log\n"
    );
    fs::write(dir.join("mosquitto.conf"), config).expect("TestBroker: cannot write mosquitto.conf");
}

/// Starts mosquitto and waits until it has logged that it runs and its port
/// accepts; an exit or a timeout is an error carrying its output.
fn spawn_and_wait(binary: &Path, dir: &Path, port: u16) -> Result<Child, String> {
    let log_path = dir.join("mosquitto.log");
    // Only lines written by this start count, not those of an earlier one.
    let log_start = fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
    let output = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("mosquitto.out"))
        .map_err(|e| format!("cannot open mosquitto.out: {e}"))?;
    let output_err = output
        .try_clone()
        .map_err(|e| format!("cannot open mosquitto.out: {e}"))?;
    let mut child = Command::new(binary)
        .arg("-c")
        .arg(dir.join("mosquitto.conf"))
        .stdin(Stdio::null())
        .stdout(output)
        .stderr(output_err)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;

    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "mosquitto exited ({status}) on port {port}: {}{}",
                read_from(&log_path, log_start),
                read_lossy(&dir.join("mosquitto.out"))
            ));
        }
        if read_from(&log_path, log_start).contains(RUNNING_MARKER) && accepts(port) {
            return Ok(child);
        }
        if Instant::now() >= deadline {
            kill_and_reap(&mut child);
            return Err(format!(
                "mosquitto not accepting on port {port} after {START_TIMEOUT:?}: {}",
                read_from(&log_path, log_start)
            ));
        }
        sleep(Duration::from_millis(10));
    }
}

/// Whether something accepts TCP connections on the loopback port.
pub fn accepts(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

fn kill_and_reap(child: &mut Child) {
    // Errors mean it already exited; `wait` then reaps it.
    let _ = child.kill();
    let _ = child.wait();
}

fn read_lossy(path: &Path) -> String {
    read_from(path, 0)
}

/// The file's contents from byte `offset`, lossily decoded; empty if absent.
fn read_from(path: &Path, offset: u64) -> String {
    let Ok(mut file) = fs::File::open(path) else {
        return String::new();
    };
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(offset)).is_err() || file.read_to_end(&mut bytes).is_err() {
        return String::new();
    }
    String::from_utf8_lossy(&bytes).into_owned()
}
