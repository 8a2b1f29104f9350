//! One stage's task: take envelopes from the input, run the stage, send the
//! result on (or to the dead-letter sink), until the input is closed and
//! empty. The stage itself is synchronous code shared with offline tools.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::envelope::{Envelope, RECV_BURST};
use crate::stage::step::{Stage, Step};
use crate::telemetry::{add, get, StageStats};

/// Runs `stage` until its input closes.
pub async fn run_stage(
    name: String,
    stage: Stage,
    mut input: mpsc::Receiver<Envelope>,
    outputs: Vec<mpsc::Sender<Envelope>>,
    dead: mpsc::Sender<Envelope>,
    stats: Arc<StageStats>,
) {
    // Take what is waiting in one go: one wake-up per burst, not per message.
    let mut taken = Vec::with_capacity(RECV_BURST);
    'run: while input.recv_many(&mut taken, RECV_BURST).await > 0 {
        add(&stats.received, taken.len() as u64);
        for envelope in taken.drain(..) {
            let (channel, envelope) = match stage.process(envelope) {
                Step::Next(port, envelope) => {
                    add(&stats.sent, 1);
                    match outputs.get(port) {
                        Some(out) => (out, envelope),
                        None => {
                            tracing::error!(stage = %name, port, "BUG: stage chose an output it does not have");
                            continue;
                        }
                    }
                }
                Step::Reject(envelope) => {
                    add(&stats.rejected, 1);
                    (&dead, envelope)
                }
            };
            if channel.send(envelope).await.is_err() {
                tracing::error!(stage = %name, "downstream task ended; stage stopping");
                break 'run;
            }
        }
    }
    tracing::info!(
        stage = %name, received = get(&stats.received), sent = get(&stats.sent),
        rejected = get(&stats.rejected), "stage totals"
    );
}
