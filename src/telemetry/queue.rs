//! Queue fill: how many envelopes wait in each stage's input, read without
//! touching the hot path (a weak handle on the channel), and a watcher that
//! warns when a queue passes 80 % of its capacity and says when it drains.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::envelope::Envelope;

/// Fill above which a queue is reported.
const HIGH: f64 = 0.8;
/// Fill below which a reported queue counts as drained.
const LOW: f64 = 0.5;
/// A queue that stays full is reported again after this long.
const REPEAT: Duration = Duration::from_secs(30);

/// A look at one channel's fill that does not keep the channel open.
#[derive(Debug, Clone)]
pub struct QueueProbe {
    /// The stage or sink whose input this is.
    pub name: String,
    weak: mpsc::WeakSender<Envelope>,
    capacity: usize,
}

impl QueueProbe {
    /// A probe on the channel `sender` feeds.
    pub fn new(name: &str, sender: &mpsc::Sender<Envelope>) -> QueueProbe {
        QueueProbe {
            name: name.to_string(),
            weak: sender.downgrade(),
            capacity: sender.max_capacity(),
        }
    }

    /// Envelopes waiting now (0 once the channel is closed).
    pub fn len(&self) -> usize {
        self.weak
            .upgrade()
            .map_or(0, |s| s.max_capacity() - s.capacity())
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The channel's capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn is_open(&self) -> bool {
        self.weak.upgrade().is_some()
    }
}

/// Logs `QUEUE` warnings until every channel has closed.
pub async fn watch(probes: Vec<QueueProbe>, every: Duration) {
    let mut reported: Vec<Option<Instant>> = vec![None; probes.len()];
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        if !probes.iter().any(QueueProbe::is_open) {
            return;
        }
        for (probe, last) in probes.iter().zip(reported.iter_mut()) {
            let len = probe.len();
            let fill = len as f64 / probe.capacity.max(1) as f64;
            match *last {
                _ if fill >= HIGH && last.is_none_or(|t| t.elapsed() >= REPEAT) => {
                    tracing::warn!(
                        stage = %probe.name, waiting = len, capacity = probe.capacity,
                        "QUEUE {} is {:.0}% full: downstream is slower than the input",
                        probe.name, fill * 100.0
                    );
                    *last = Some(Instant::now());
                }
                Some(_) if fill < LOW => {
                    tracing::info!(
                        stage = %probe.name, waiting = len, capacity = probe.capacity,
                        "QUEUE {} drained back to {:.0}%", probe.name, fill * 100.0
                    );
                    *last = None;
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::delivery::DeliveryToken;
    use crate::envelope::{Body, Captures};

    fn envelope() -> Envelope {
        Envelope {
            topic: Arc::from("t"),
            captures: Captures::default(),
            payload: bytes::Bytes::new(),
            received_at: chrono::Utc::now(),
            body: Body::Raw,
            token: DeliveryToken::detached(),
        }
    }

    #[tokio::test]
    async fn probes_read_the_fill_without_keeping_the_channel_open() {
        let (tx, mut rx) = mpsc::channel(4);
        let probe = QueueProbe::new("s", &tx);
        assert!(probe.is_empty());
        tx.send(envelope()).await.unwrap();
        tx.send(envelope()).await.unwrap();
        assert_eq!((probe.len(), probe.capacity()), (2, 4));
        drop(tx);
        assert!(rx.recv().await.is_some());
        assert!(rx.recv().await.is_some());
        assert!(
            rx.recv().await.is_none(),
            "the probe must not keep the channel open"
        );
        assert_eq!(probe.len(), 0);
    }
}
