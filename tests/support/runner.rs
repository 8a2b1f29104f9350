//! `RunnerProcess`: the `runner` binary as an operator runs it, as a child
//! process a test can signal, kill, restart and watch.
//!
//! Why: a SIGKILL, a SIGTERM or a peak RSS only mean something for a real
//! process; running the pipeline in-process (`TestPipeline`) cannot show
//! them. The path of the binary is a parameter because Cargo gives it to
//! integration tests only, through `env!("CARGO_BIN_EXE_runner")`.
//!
//! Guarantees:
//! - the runner runs the shipped `pipelines/traksense.yaml`, with the
//!   caller's environment on top of fixed defaults (`RUST_LOG=info`, text
//!   logs without colours) so log lines can be matched;
//! - its stdout and stderr go to one file in a private temporary directory,
//!   readable while it runs ([`RunnerProcess::log`]);
//! - every wait is bounded and, when it fails, panics with the log's tail;
//! - the peak resident set (`VmHWM`) is sampled every 50 ms from a background
//!   thread until the process exits, so it is known after exit too;
//! - dropping it kills the process and reaps it; if the test is panicking,
//!   the tail of the log is printed first.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::pipeline::SHIPPED;

/// Pause between two reads of the log or two checks for exit.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// Pause between two samples of `VmHWM`.
const RSS_SAMPLE_INTERVAL: Duration = Duration::from_millis(50);

/// Lines of log printed when a wait fails or a test panics.
const LOG_TAIL_LINES: usize = 60;

/// A running (or exited) `runner` process.
pub struct RunnerProcess {
    /// The process; reaped by `wait` or on drop.
    child: Child,
    /// The process id, kept for signals and `/proc` after `child` is reaped.
    pid: u32,
    /// Holds `runner.log`; removed on drop.
    dir: TempDir,
    /// Shared with the sampler; see [`Sampler`].
    sampler: Arc<Sampler>,
    /// The sampling thread; joined on drop.
    sampler_thread: Option<JoinHandle<()>>,
    /// The exit status once reaped.
    status: Option<ExitStatus>,
}

/// What the RSS sampler and the reaper share.
struct Sampler {
    /// Largest `VmHWM` seen, in KiB.
    peak_kb: AtomicU64,
    /// Set once the process is reaped. A std `Mutex`, held by the sampler
    /// while it reads `/proc/PID/status` and by the reaper while it reaps, so
    /// that the sampler never reads the status of another process that was
    /// given the same pid after ours was reaped.
    reaped: Mutex<bool>,
    /// Set on drop: the sampler ends.
    stop: AtomicBool,
}

impl RunnerProcess {
    /// Starts `bin` on the shipped pipeline with `env` set (on top of the
    /// defaults in the module doc; `env` wins). Returns at once: wait for
    /// `subscribed` with [`RunnerProcess::wait_for_log`] before publishing.
    pub fn start<I, K, V>(bin: &Path, env: I) -> RunnerProcess
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        let dir = tempfile::Builder::new()
            .prefix("test-runner-")
            .tempdir()
            .expect("RunnerProcess: cannot create a temporary directory");
        let log_path = dir.path().join("runner.log");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("RunnerProcess: cannot create runner.log");
        let log_err = log
            .try_clone()
            .expect("RunnerProcess: cannot share runner.log");
        let mut command = Command::new(bin);
        command
            .arg(SHIPPED)
            // Matched by tests, so fixed whatever the caller's environment.
            .env("RUST_LOG", "info")
            .env("LOG_FORMAT", "text")
            .env("NO_COLOR", "1")
            // Parallel runners must not fight over the default :9100 should
            // the runner serve metrics; port 0 asks the system for a free one.
            .env("METRICS_PORT", "0")
            .envs(env)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("RunnerProcess: cannot run {}: {e}", bin.display()));
        let pid = child.id();
        let sampler = Arc::new(Sampler {
            peak_kb: AtomicU64::new(0),
            reaped: Mutex::new(false),
            stop: AtomicBool::new(false),
        });
        let sampler_thread = {
            let sampler = sampler.clone();
            std::thread::spawn(move || sample_rss(pid, &sampler))
        };
        RunnerProcess {
            child,
            pid,
            dir,
            sampler,
            sampler_thread: Some(sampler_thread),
            status: None,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Where the log is written.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("runner.log")
    }

    /// Everything the runner has written so far (stdout and stderr).
    pub fn log(&self) -> String {
        fs::read(self.log_path())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// How many log lines so far contain `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log().lines().filter(|l| l.contains(needle)).count()
    }

    /// Waits until a log line contains `needle` and returns that line;
    /// panics with the log's tail after `timeout` or if the runner exits
    /// first.
    pub async fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> String {
        self.wait_for_log_count(needle, 1, timeout).await;
        self.log()
            .lines()
            .find(|l| l.contains(needle))
            .map(str::to_owned)
            .unwrap_or_default()
    }

    /// Waits until `n` log lines contain `needle`; panics with the log's
    /// tail after `timeout` or if the runner exits first.
    pub async fn wait_for_log_count(&mut self, needle: &str, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log_count(needle) >= n {
                return;
            }
            if let Some(status) = self.try_wait() {
                // It may have written the line just before exiting.
                if self.log_count(needle) >= n {
                    return;
                }
                panic!(
                    "runner exited ({status}) before logging {needle:?} {n} time(s):\n{}",
                    self.log_tail()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "runner did not log {needle:?} {n} time(s) within {timeout:?} \
                     (seen {}):\n{}",
                    self.log_count(needle),
                    self.log_tail()
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Asks the runner to stop gracefully (SIGTERM).
    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    /// Kills the runner (SIGKILL), as a crash or the OOM killer would.
    pub fn sigkill(&self) {
        self.signal("KILL");
    }

    /// Freezes the runner (SIGSTOP): it keeps its sockets and its state but
    /// runs no code until [`RunnerProcess::resume`]; a way to hold it
    /// mid-stream at a known point while something else fails.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Lets a paused runner run again (SIGCONT).
    pub fn resume(&self) {
        self.signal("CONT");
    }

    /// Sends `SIG{name}` with the `kill` program (as `TestBroker` does), so
    /// no libc binding is needed; a no-op once the process is reaped.
    fn signal(&self, name: &str) {
        if self.status.is_some() {
            return;
        }
        let sent = Command::new("kill")
            .args([format!("-{name}"), self.pid.to_string()])
            .status();
        assert!(
            matches!(sent, Ok(status) if status.success()),
            "RunnerProcess: kill -{name} {} failed: {sent:?}",
            self.pid
        );
    }

    /// The exit status if the process has exited (and reaps it).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            let mut reaped = lock(&self.sampler.reaped);
            if let Ok(Some(status)) = self.child.try_wait() {
                *reaped = true;
                self.status = Some(status);
            }
        }
        self.status
    }

    /// Waits for the process to exit and returns its status; panics with the
    /// log's tail if it is still running after `timeout`.
    pub async fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return status;
            }
            if Instant::now() >= deadline {
                panic!(
                    "runner (pid {}) still running {timeout:?} later:\n{}",
                    self.pid,
                    self.log_tail()
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// The peak resident set size in KiB: `VmHWM` now if the process is
    /// alive, else the largest value sampled while it was.
    pub fn peak_rss_kb(&self) -> u64 {
        {
            let reaped = lock(&self.sampler.reaped);
            if !*reaped {
                if let Some(kb) = read_vm_hwm_kb(self.pid) {
                    self.sampler.peak_kb.fetch_max(kb, Ordering::SeqCst);
                }
            }
        }
        self.sampler.peak_kb.load(Ordering::SeqCst)
    }

    /// The last lines of the log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }
}

impl Drop for RunnerProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "RunnerProcess pid {}: last log lines:\n{}",
                self.pid,
                self.log_tail()
            );
        }
        if self.status.is_none() {
            // SIGKILL also ends a SIGSTOPped process. Errors mean it already
            // exited; `wait` then reaps it.
            let _ = self.child.kill();
            let mut reaped = lock(&self.sampler.reaped);
            let _ = self.child.wait();
            *reaped = true;
        }
        self.sampler.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.sampler_thread.take() {
            let _ = thread.join();
        }
    }
}

/// Samples `VmHWM` of `pid` until it is reaped, exits (a zombie has no
/// `VmHWM`) or the `RunnerProcess` is dropped.
fn sample_rss(pid: u32, sampler: &Sampler) {
    while !sampler.stop.load(Ordering::SeqCst) {
        {
            let reaped = lock(&sampler.reaped);
            if *reaped {
                return;
            }
            match read_vm_hwm_kb(pid) {
                Some(kb) => {
                    sampler.peak_kb.fetch_max(kb, Ordering::SeqCst);
                }
                None => return,
            }
        }
        std::thread::sleep(RSS_SAMPLE_INTERVAL);
    }
}

/// `VmHWM` (peak resident set) of `pid` in KiB, from `/proc/PID/status`;
/// `None` if the process is gone or a zombie.
fn read_vm_hwm_kb(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Locks the reaped flag; a bool cannot be left half-written, so a poisoned
/// lock is still good to use.
fn lock(reaped: &Mutex<bool>) -> std::sync::MutexGuard<'_, bool> {
    reaped.lock().unwrap_or_else(PoisonError::into_inner)
}
