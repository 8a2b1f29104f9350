//! When `ts_measure` inserts pay for `ON CONFLICT DO NOTHING`.
//!
//! A conflict on the unique key (tenant, device, point, ts) happens only when
//! a row is already stored: the broker redelivered a message after a lost
//! connection or a restart, or a device sent the same reading twice. Paying
//! for the conflict check on every row is expensive: PostgreSQL 15 takes
//! 1.2–1.4× as long for `INSERT … ON CONFLICT DO NOTHING` as for a plain
//! `INSERT` of the same rows (speculative insertion: an extra index probe and
//! an extra WAL record per row; `bench/statements`). So the sink inserts plainly,
//! and when the unique key refuses a row (SQLSTATE 23505, which rolls the
//! whole transaction back: nothing half-written) it writes the same rows
//! again with `ON CONFLICT DO NOTHING`, and keeps doing so for [`HOLD`]
//! after the last conflict, because redeliveries come in bursts. Either way
//! every row is stored exactly once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long after a conflict every insert pays for `ON CONFLICT`: long
/// enough to cover a reconnect's redelivery burst, short enough that one
/// duplicate does not slow the sink for good.
pub const HOLD: Duration = Duration::from_secs(10);

/// The shared state of one sink's writers: when the last conflict was.
#[derive(Debug)]
pub struct Dedup {
    start: Instant,
    /// Milliseconds after `start` until which inserts dedup (0: never yet).
    until_ms: AtomicU64,
}

impl Default for Dedup {
    fn default() -> Self {
        Dedup {
            start: Instant::now(),
            until_ms: AtomicU64::new(0),
        }
    }
}

impl Dedup {
    /// Whether the next insert may go without `ON CONFLICT`.
    pub fn optimistic(&self) -> bool {
        self.now_ms() >= self.until_ms.load(Ordering::Relaxed)
    }

    /// Records a conflict: inserts dedup for the next [`HOLD`].
    pub fn conflicted(&self) {
        let until = self.now_ms() + HOLD.as_millis() as u64;
        self.until_ms.fetch_max(until, Ordering::Relaxed);
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
}

/// Whether a failed insert met a row that is already stored (a unique
/// violation), as opposed to data the database refuses.
pub fn is_duplicate_key(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some("23505"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conflict_makes_inserts_dedup_for_a_while() {
        let dedup = Dedup::default();
        assert!(dedup.optimistic());
        dedup.conflicted();
        assert!(!dedup.optimistic());
        // Pretend HOLD has passed.
        dedup.until_ms.store(dedup.now_ms(), Ordering::Relaxed);
        assert!(dedup.optimistic());
    }

    #[test]
    fn only_unique_violations_are_duplicates() {
        assert!(!is_duplicate_key(&sqlx::Error::PoolTimedOut));
    }
}
