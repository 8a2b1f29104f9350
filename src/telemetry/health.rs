//! What readiness depends on: the broker session, the subscriptions and the
//! database. The source and a database probe keep it current; `/readyz`
//! and tests read it.

use std::sync::atomic::{AtomicBool, Ordering};

/// Readiness flags.
#[derive(Debug, Default)]
pub struct Health {
    /// Connected to the broker (CONNACK received, connection not lost since).
    pub broker_up: AtomicBool,
    /// The broker granted our subscriptions on this session.
    pub subscribed: AtomicBool,
    /// The last database probe succeeded.
    pub db_up: AtomicBool,
}

impl Health {
    /// Whether messages published now reach the pipeline (broker side only).
    pub fn ready(&self) -> bool {
        self.broker_up.load(Ordering::Relaxed) && self.subscribed.load(Ordering::Relaxed)
    }

    /// Whether the whole pipeline can make progress: broker session up,
    /// subscribed, and the database reachable. Drives `/readyz`.
    pub fn fully_ready(&self) -> bool {
        self.ready() && self.db_up.load(Ordering::Relaxed)
    }

    /// What is down, for the `/readyz` body.
    pub fn describe(&self) -> String {
        let flag = |b: &AtomicBool| {
            if b.load(Ordering::Relaxed) {
                "up"
            } else {
                "down"
            }
        };
        format!(
            "broker: {}\nsubscriptions: {}\ndatabase: {}\n",
            flag(&self.broker_up),
            if self.subscribed.load(Ordering::Relaxed) {
                "granted"
            } else {
                "none"
            },
            flag(&self.db_up)
        )
    }

    /// Records the broker connection going up or down.
    pub fn set_broker_up(&self, up: bool) {
        self.broker_up.store(up, Ordering::Relaxed);
    }

    /// Records the subscriptions being granted (or lost with the session).
    pub fn set_subscribed(&self, subscribed: bool) {
        self.subscribed.store(subscribed, Ordering::Relaxed);
    }

    /// Records the outcome of a database probe.
    pub fn set_db_up(&self, up: bool) {
        self.db_up.store(up, Ordering::Relaxed);
    }
}
