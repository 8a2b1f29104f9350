//! Bounded waiting for effects that happen asynchronously, such as rows the
//! pipeline commits some time after a publish.
//!
//! Why: a fixed sleep is either too short (flaky) or too long (slow). This
//! polls instead, every 25 ms, and gives up after the caller's timeout with
//! what it was waiting for and what it saw last. It says when something
//! happened, never how fast: timing assertions belong elsewhere.
//!
//! It needs real time: with paused tokio time the runtime would jump to the
//! deadline while a poll waits on the database. Tests against real services
//! use the multi-threaded runtime, which cannot pause time anyway.

use std::fmt::Debug;
use std::future::Future;
use std::time::{Duration, Instant};

/// Pause between two polls.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// What a poll of [`eventually`] returns: done with a value, or not yet with
/// something worth showing if the wait times out.
pub trait Outcome {
    /// What `eventually` returns once done.
    type Value;
    /// `Ok` when done; otherwise what was observed, for the timeout message.
    fn into_result(self) -> Result<Self::Value, String>;
}

/// `Some(value)` is done; `None` is not yet.
impl<T> Outcome for Option<T> {
    type Value = T;
    fn into_result(self) -> Result<T, String> {
        self.ok_or_else(|| "None".to_owned())
    }
}

/// `Ok(value)` is done; `Err(observed)` is not yet and shows what was seen
/// (e.g. `Err(row_count)`), which the timeout message prints.
impl<T, E: Debug> Outcome for Result<T, E> {
    type Value = T;
    fn into_result(self) -> Result<T, String> {
        self.map_err(|observed| format!("{observed:?}"))
    }
}

/// Polls `poll` until it reports done, and returns its value; panics after
/// `timeout` naming `what` and the last observed value.
///
/// ```ignore
/// let rows = eventually("3 rows in ts_measure", Duration::from_secs(10), || async {
///     let n = db.count("select count(*) from ts_measure").await;
///     if n == 3 { Ok(n) } else { Err(n) }
/// })
/// .await;
/// ```
///
/// A poll that itself hangs is cut off at the deadline too.
pub async fn eventually<F, Fut, O>(what: &str, timeout: Duration, mut poll: F) -> O::Value
where
    F: FnMut() -> Fut,
    Fut: Future<Output = O>,
    O: Outcome,
{
    let started = Instant::now();
    let deadline = started + timeout;
    let mut last = "nothing (no poll finished)".to_owned();
    let mut polls = 0u32;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, poll()).await {
            Ok(outcome) => {
                polls += 1;
                match outcome.into_result() {
                    Ok(value) => return value,
                    Err(observed) => last = observed,
                }
            }
            Err(_) => last = format!("{last}; the last poll was still running"),
        }
        if Instant::now() >= deadline {
            panic!(
                "timed out after {:?} waiting for {what}: last observed {last} ({polls} polls)",
                started.elapsed()
            );
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
