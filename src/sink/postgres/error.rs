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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_retried() {
        let e = sqlx::Error::Io(std::io::Error::other("reset"));
        assert_eq!(classify(&e), Disposition::Retry);
        assert_eq!(classify(&sqlx::Error::PoolTimedOut), Disposition::Retry);
    }
}
