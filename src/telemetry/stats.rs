//! Counters each stage, sink and the source update: plain atomics, one
//! relaxed add per event, no lock and no allocation on the hot path. The
//! metrics exporter reads them at scrape time; the runner logs their totals
//! on stop.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::envelope::{Captures, Reason};

/// Per-stage counters.
#[derive(Debug, Default)]
pub struct StageStats {
    /// Envelopes taken from the input channel.
    pub received: AtomicU64,
    /// Envelopes passed on.
    pub sent: AtomicU64,
    /// Envelopes turned into dead letters.
    pub rejected: AtomicU64,
}

/// Per-sink counters.
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Messages committed.
    pub messages: AtomicU64,
    /// Rows committed.
    pub rows: AtomicU64,
    /// Batches committed.
    pub batches: AtomicU64,
    /// Writes retried after a transient error.
    pub retries: AtomicU64,
    /// Plain inserts that met an already stored row and were written again
    /// with `ON CONFLICT DO NOTHING` (see `sink::postgres::dedup`).
    pub dedup_fallbacks: AtomicU64,
    /// Messages the database refused (sent on as `db_rejected`).
    pub db_rejected: AtomicU64,
    /// Dead letters committed, by reason (indexed like [`Reason::ALL`]);
    /// only the dead-letter sink counts here.
    pub by_reason: [AtomicU64; Reason::ALL.len()],
}

impl SinkStats {
    /// Counts one committed dead letter.
    pub fn count_reason(&self, reason: Reason) {
        if let Some(i) = Reason::ALL.iter().position(|r| *r == reason) {
            add(&self.by_reason[i], 1);
        }
    }
}

/// Per-source counters.
#[derive(Debug, Default)]
pub struct SourceStats {
    /// Messages received from the broker.
    pub received: AtomicU64,
    /// Messages acknowledged to the broker.
    pub acked: AtomicU64,
    /// Connections established (the first one included).
    pub connects: AtomicU64,
    /// Messages received, by `type` (topic kind): one counter per known
    /// kind, in [`SourceStats::types`] order, then one for any other.
    pub by_type: Vec<AtomicU64>,
    /// The known kinds (route values), bounded by the pipeline file so the
    /// `type` label cannot grow with what devices publish.
    pub types: Vec<String>,
    /// The topic capture holding the kind (the router's `on`).
    pub type_capture: String,
}

impl SourceStats {
    /// Counters for the known kinds `types` of topic capture `capture`
    /// (plus `other`).
    pub fn with_types(capture: &str, types: Vec<String>) -> Self {
        SourceStats {
            by_type: (0..=types.len()).map(|_| AtomicU64::new(0)).collect(),
            types,
            type_capture: capture.to_string(),
            ..SourceStats::default()
        }
    }

    /// Counts one received message by its topic kind.
    pub fn count_type(&self, captures: &Captures) {
        let i = captures
            .get(&self.type_capture)
            .and_then(|k| self.types.iter().position(|t| t == k))
            .unwrap_or(self.types.len());
        if let Some(counter) = self.by_type.get(i) {
            add(counter, 1);
        }
    }

    /// `(label, count)` for every type, `other` last.
    pub fn type_counts(&self) -> Vec<(&str, u64)> {
        self.types
            .iter()
            .map(String::as_str)
            .chain(std::iter::once("other"))
            .zip(self.by_type.iter().map(get))
            .collect()
    }
}

/// Adds `n` to a counter.
pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Reads a counter.
pub fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_kinds_count_as_other() {
        let s = SourceStats::with_types("kind", vec!["telem".into(), "ack".into()]);
        let kind = |k: &str| Captures::new(vec![(std::sync::Arc::from("kind"), k.to_string())]);
        s.count_type(&kind("telem"));
        s.count_type(&kind("ack"));
        s.count_type(&kind("ack"));
        s.count_type(&kind("whatever"));
        s.count_type(&Captures::default());
        assert_eq!(
            s.type_counts(),
            vec![("telem", 1), ("ack", 2), ("other", 2)]
        );
    }

    #[test]
    fn dead_letters_count_by_reason() {
        let s = SinkStats::default();
        s.count_reason(Reason::ParseError);
        s.count_reason(Reason::ParseError);
        s.count_reason(Reason::DbRejected);
        let counts: Vec<u64> = s.by_reason.iter().map(get).collect();
        assert_eq!(counts, vec![0, 0, 2, 0, 0, 0, 1]);
    }
}
