//! Delivery tokens and in-order acknowledgement.
//!
//! Every message the source hands to the pipeline carries a [`DeliveryToken`].
//! A sink calls [`DeliveryToken::commit`] once the message's rows (or its dead
//! letter) are committed; dropping a token settles it either way, as Vector's
//! finalizers do, so no code path can forget one. The [`Ledger`] keeps the
//! tokens in the order the broker sent the messages and releases them only
//! from the front: MQTT wants PUBACKs in PUBLISH order, so a message that
//! commits early waits for the ones before it.
//!
//! A token dropped without a commit is a bug (or an aborted shutdown): it is
//! logged loudly and never acknowledged, so the broker redelivers it on the
//! next session instead of it being lost.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// How a message's journey ended, as reported by its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Still in the pipeline.
    Pending,
    /// Its rows or its dead letter are committed: safe to acknowledge.
    Committed,
    /// The token was dropped without a commit: never acknowledge.
    Dropped,
}

/// What a token reports to when it settles; implemented by [`Ledger`].
trait Settle: Send + Sync {
    fn settle(&self, seq: u64, status: Status);
}

/// Travels with one message; settles its slot in the ledger when dropped.
pub struct DeliveryToken {
    seq: u64,
    ledger: Option<Arc<dyn Settle>>,
    committed: bool,
}

impl DeliveryToken {
    /// A token that reports nowhere: for dry runs and unit tests, where no
    /// broker waits for an acknowledgement.
    pub fn detached() -> Self {
        DeliveryToken {
            seq: 0,
            ledger: None,
            committed: false,
        }
    }

    /// Marks the message as committed; the ledger may now acknowledge it.
    pub fn commit(mut self) {
        self.committed = true;
    }
}

impl Drop for DeliveryToken {
    fn drop(&mut self) {
        if let Some(ledger) = self.ledger.take() {
            let status = if self.committed {
                Status::Committed
            } else {
                Status::Dropped
            };
            ledger.settle(self.seq, status);
        }
    }
}

impl fmt::Debug for DeliveryToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeliveryToken")
            .field("seq", &self.seq)
            .field("attached", &self.ledger.is_some())
            .finish()
    }
}

/// One message awaiting acknowledgement.
struct Slot<T> {
    status: Status,
    /// The connection the message came in on; an acknowledgement for an
    /// older connection's packet id must not be sent on a new one.
    epoch: u64,
    item: T,
}

/// Mutable state, behind a std `Mutex`: held for a few instructions, never
/// across an `.await`.
struct State<T> {
    /// Sequence number of `slots[0]`.
    head_seq: u64,
    slots: VecDeque<Slot<T>>,
    epoch: u64,
    closed: bool,
}

/// In-order acknowledgement bookkeeping for one source.
///
/// Its size is bounded by the messages in flight, which the broker bounds by
/// our Receive Maximum, so it needs no limit of its own.
pub struct Ledger<T> {
    state: Mutex<State<T>>,
    notify: Notify,
    dropped: AtomicU64,
}

impl<T: Send + 'static> Ledger<T> {
    /// An empty ledger, at connection epoch 0.
    pub fn new() -> Arc<Self> {
        Arc::new(Ledger {
            state: Mutex::new(State {
                head_seq: 0,
                slots: VecDeque::new(),
                epoch: 0,
                closed: false,
            }),
            notify: Notify::new(),
            dropped: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding this lock leaves consistent state (every
        // method mutates in one step), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a newly received message and returns the token that settles it.
    pub fn register(self: &Arc<Self>, item: T) -> DeliveryToken {
        let mut state = self.lock();
        let seq = state.head_seq + state.slots.len() as u64;
        let epoch = state.epoch;
        state.slots.push_back(Slot {
            status: Status::Pending,
            epoch,
            item,
        });
        drop(state);
        DeliveryToken {
            seq,
            ledger: Some(self.clone() as Arc<dyn Settle>),
            committed: false,
        }
    }

    /// Starts a new connection epoch: messages received before it are never
    /// acknowledged (the broker redelivers them on the new connection).
    pub fn new_epoch(&self) {
        self.lock().epoch += 1;
    }

    /// No more messages will be registered; [`Ledger::next_ready`] returns
    /// `None` once every registered one has settled.
    pub fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_one();
    }

    /// Messages received but not yet settled and released.
    pub fn in_flight(&self) -> usize {
        self.lock().slots.len()
    }

    /// Tokens dropped without a commit since start: always 0 unless a bug
    /// or an aborted shutdown lost track of a message.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits until the oldest message has settled, then returns, in order,
    /// every leading committed message of the current connection.
    /// Returns `None` when closed and empty.
    pub async fn next_ready(&self) -> Option<Vec<T>> {
        loop {
            {
                let mut state = self.lock();
                let mut ready = Vec::new();
                while state
                    .slots
                    .front()
                    .is_some_and(|s| s.status != Status::Pending)
                {
                    let Some(slot) = state.slots.pop_front() else {
                        break;
                    };
                    state.head_seq += 1;
                    if slot.status == Status::Committed && slot.epoch == state.epoch {
                        ready.push(slot.item);
                    }
                }
                if !ready.is_empty() {
                    return Some(ready);
                }
                if state.closed && state.slots.is_empty() {
                    return None;
                }
            }
            self.notify.notified().await;
        }
    }
}

impl<T: Send> Settle for Ledger<T> {
    fn settle(&self, seq: u64, status: Status) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(index) = seq.checked_sub(state.head_seq) else {
            return;
        };
        if let Some(slot) = state.slots.get_mut(index as usize) {
            slot.status = status;
        }
        drop(state);
        if status == Status::Dropped {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                seq,
                "BUG: a message left the pipeline without being committed; \
                 it will not be acknowledged and the broker will redeliver it"
            );
        }
        self.notify.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready_now(ledger: &Ledger<u32>) -> Option<Vec<u32>> {
        tokio_test_now(ledger.next_ready())
    }

    /// Polls a future once: `None` if it would wait.
    fn tokio_test_now<F: std::future::Future>(f: F) -> F::Output
    where
        F::Output: Default,
    {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_millis(20), f)
                .await
                .unwrap_or_default()
        })
    }

    #[test]
    fn releases_in_arrival_order_only() {
        let ledger = Ledger::new();
        let a = ledger.register(1);
        let b = ledger.register(2);
        let c = ledger.register(3);
        c.commit();
        b.commit();
        assert_eq!(ready_now(&ledger), None, "2 and 3 must wait for 1");
        a.commit();
        assert_eq!(ready_now(&ledger), Some(vec![1, 2, 3]));
        assert_eq!(ledger.in_flight(), 0);
    }

    #[test]
    fn dropped_token_is_never_acknowledged_and_does_not_block() {
        let ledger = Ledger::new();
        let a = ledger.register(1);
        let b = ledger.register(2);
        drop(a);
        b.commit();
        assert_eq!(ready_now(&ledger), Some(vec![2]));
        assert_eq!(ledger.dropped(), 1);
    }

    #[test]
    fn old_connection_packets_are_not_acknowledged_on_new_one() {
        let ledger = Ledger::new();
        let old = ledger.register(1);
        ledger.new_epoch();
        let new = ledger.register(2);
        old.commit();
        new.commit();
        assert_eq!(ready_now(&ledger), Some(vec![2]));
    }

    #[test]
    fn closed_and_empty_ends() {
        let ledger: Arc<Ledger<u32>> = Ledger::new();
        let a = ledger.register(7);
        ledger.close();
        a.commit();
        assert_eq!(ready_now(&ledger), Some(vec![7]));
        assert_eq!(ready_now(&ledger), None);
    }

    #[test]
    fn detached_token_settles_nowhere() {
        DeliveryToken::detached().commit();
        drop(DeliveryToken::detached());
    }
}
