//! Capped exponential backoff with jitter, shared by everything that waits
//! before trying again: database writes, database start-up, MQTT reconnects.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The wait before try number `attempt + 1`: 100 ms doubling up to `cap`,
/// less up to 25 % jitter so many waiters do not retry in lockstep.
pub fn backoff(attempt: u32, cap: Duration) -> Duration {
    let base = Duration::from_millis(100).saturating_mul(1 << attempt.min(16));
    let capped = base.min(cap);
    // Jitter without a PRNG dependency: the sub-second clock is random enough.
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let jitter = capped.mul_f64(f64::from(nanos % 1000) / 4000.0);
    capped.saturating_sub(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let cap = Duration::from_secs(5);
        assert!(backoff(0, cap) <= Duration::from_millis(100));
        assert!(backoff(0, cap) >= Duration::from_millis(75));
        assert!(backoff(3, cap) >= Duration::from_millis(600));
        assert!(backoff(30, cap) <= cap);
        assert!(backoff(30, cap) >= cap.mul_f64(0.75));
    }
}
