//! The extra publishes of connection 0: `--invalid` payloads that must
//! become dead letters and `--dup-acks` command ACKs published twice each,
//! spread evenly among its telemetry messages (so the runner meets them
//! under load, not in a quiet tail).

use rumqttc::v5::AsyncClient;

use crate::publish::publish;
use crate::shape::{Clocks, Shape};

/// Invalid payloads and duplicated ACKs, spread over connection 0's messages.
pub struct Extras {
    /// Connection 0's telemetry messages.
    own: u64,
    /// Telemetry messages sent so far.
    seen: u64,
    invalid_sent: u64,
    acks_sent: u64,
}

impl Extras {
    /// Extras spread over `own` telemetry messages.
    pub fn new(own: u64) -> Extras {
        Extras {
            own,
            seen: 0,
            invalid_sent: 0,
            acks_sent: 0,
        }
    }

    /// Sends the extras due after one more telemetry message; returns how
    /// many publishes that was.
    pub async fn after_message(
        &mut self,
        client: &AsyncClient,
        shape: &Shape,
        clocks: &mut Clocks,
    ) -> Result<u64, String> {
        self.seen += 1;
        let invalid_due = shape.invalid * self.seen / self.own.max(1);
        let acks_due = shape.dup_acks * self.seen / self.own.max(1);
        self.send_until(client, shape, clocks, invalid_due, acks_due)
            .await
    }

    /// Sends whatever is still due at the end.
    pub async fn rest(
        &mut self,
        client: &AsyncClient,
        shape: &Shape,
        clocks: &mut Clocks,
    ) -> Result<u64, String> {
        self.send_until(client, shape, clocks, shape.invalid, shape.dup_acks)
            .await
    }

    async fn send_until(
        &mut self,
        client: &AsyncClient,
        shape: &Shape,
        clocks: &mut Clocks,
        invalid_due: u64,
        acks_due: u64,
    ) -> Result<u64, String> {
        let mut published = 0;
        while self.invalid_sent < invalid_due {
            let m = self.invalid_sent;
            let device = shape.device_of(m);
            let payload = shape.invalid_payload(m, clocks.stamp(device));
            publish(client, shape.topic(device, "telem"), payload).await?;
            self.invalid_sent += 1;
            published += 1;
        }
        while self.acks_sent < acks_due {
            let m = self.acks_sent;
            let device = shape.device_of(m);
            let payload = shape.ack_payload(m, clocks.stamp(device));
            for _ in 0..2 {
                publish(client, shape.topic(device, "ack"), payload.clone()).await?;
                published += 1;
            }
            self.acks_sent += 1;
        }
        Ok(published)
    }
}
