//! Which database errors to retry and which to pin on the data.
//!
//! Retrying is always safe (nothing is acknowledged until a commit), so
//! anything that might be transient or a deployment problem is retried; only
//! errors that say *this data* is unacceptable (SQLSTATE classes 22 data
//! exception, 23 integrity violation, 54 program limit) are `Reject`, which
//! isolates the offending message as a `db_rejected` dead letter.

/// What to do about a failed write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Back off and try the same write again.
    Retry,
    /// The data itself is refused: split the batch and dead-letter the culprit.
    Reject,
}

/// Classifies an error from a sink write.
pub fn classify(error: &sqlx::Error) -> Disposition {
    match error {
        sqlx::Error::Database(db) => match db.code().as_deref().map(|c| &c[..2.min(c.len())]) {
            Some("22" | "23" | "54") => Disposition::Reject,
            _ => Disposition::Retry,
        },
        sqlx::Error::Encode(_) | sqlx::Error::TypeNotFound { .. } => Disposition::Reject,
        _ => Disposition::Retry,
    }
}

/// Capped exponential backoff with jitter: 100 ms doubling up to `cap`.
pub fn backoff(attempt: u32, cap: std::time::Duration) -> std::time::Duration {
    let base = std::time::Duration::from_millis(100).saturating_mul(1 << attempt.min(16));
    let capped = base.min(cap);
    // Jitter without a PRNG dependency: the sub-second clock is random enough
    // to keep many writers from retrying in lockstep.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let jitter = capped.mul_f64(f64::from(nanos % 1000) / 4000.0);
    capped.saturating_sub(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn backoff_grows_and_is_capped() {
        let cap = Duration::from_secs(5);
        assert!(backoff(0, cap) <= Duration::from_millis(100));
        assert!(backoff(0, cap) >= Duration::from_millis(75));
        assert!(backoff(3, cap) >= Duration::from_millis(600));
        assert!(backoff(30, cap) <= cap);
        assert!(backoff(30, cap) >= cap.mul_f64(0.75));
    }

    #[test]
    fn io_errors_are_retried() {
        let e = sqlx::Error::Io(std::io::Error::other("reset"));
        assert_eq!(classify(&e), Disposition::Retry);
        assert_eq!(classify(&sqlx::Error::PoolTimedOut), Disposition::Retry);
    }
}
