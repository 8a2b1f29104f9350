//! The `router` stage: sends each envelope to the output named for the value
//! of one topic capture (`kind` → `telem` or `ack`). A value with no route is
//! a `bad_topic` dead letter, never a silent drop.

use crate::envelope::{Envelope, Reason};

use super::step::Step;

/// A compiled router.
#[derive(Debug)]
pub struct Router {
    /// The topic capture routed on, e.g. `kind`.
    on: String,
    /// `(capture value, output port)`, in the pipeline file's order.
    routes: Vec<(String, usize)>,
}

impl Router {
    /// Builds a router on capture `on`; `routes` map a value to an output port.
    pub fn new(on: String, routes: Vec<(String, usize)>) -> Self {
        Router { on, routes }
    }

    /// The capture values this router routes (e.g. `telem`, `ack`): the
    /// bounded set of `type` labels for the message counter.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.routes.iter().map(|(k, _)| k.as_str())
    }

    /// The topic capture routed on.
    pub fn on(&self) -> &str {
        &self.on
    }

    /// `(capture value, output port)`, in the pipeline file's order.
    pub fn routes(&self) -> &[(String, usize)] {
        &self.routes
    }

    /// Routes one envelope.
    pub fn process(&self, envelope: Envelope) -> Step {
        let value = envelope.captures.get(&self.on);
        match value.and_then(|v| self.routes.iter().find(|(k, _)| k == v)) {
            Some(&(_, port)) => Step::Next(port, envelope),
            None => {
                let known: Vec<&str> = self.routes.iter().map(|(k, _)| k.as_str()).collect();
                let detail = match value {
                    Some(v) => format!(
                        "topic {:?}: {} {:?} has no route; expected one of {}",
                        &*envelope.topic,
                        self.on,
                        v,
                        known.join(", ")
                    ),
                    None => format!(
                        "topic {:?} has no {:?} segment to route on",
                        &*envelope.topic, self.on
                    ),
                };
                Step::Reject(envelope.reject(Reason::BadTopic, detail))
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

    fn envelope(kind: &str) -> Envelope {
        Envelope {
            topic: Arc::from(format!("traksense/t/s/d/{kind}")),
            captures: Captures::new(vec![(Arc::from("kind"), kind.to_string())]),
            payload: bytes::Bytes::from_static(b"{}"),
            received_at: chrono::Utc::now(),
            body: Body::Raw,
            token: DeliveryToken::detached(),
        }
    }

    #[test]
    fn routes_by_capture_and_rejects_unknown_values() {
        let router = Router::new("kind".into(), vec![("telem".into(), 0), ("ack".into(), 1)]);
        assert!(matches!(router.process(envelope("ack")), Step::Next(1, _)));
        assert!(matches!(
            router.process(envelope("telem")),
            Step::Next(0, _)
        ));
        match router.process(envelope("cmd")) {
            Step::Reject(e) => match e.body {
                Body::Rejected(r) => {
                    assert_eq!(r.reason, Reason::BadTopic);
                    assert!(r.detail.contains("\"cmd\""), "{}", r.detail);
                }
                other => panic!("unexpected body {other:?}"),
            },
            other => panic!("unexpected step {other:?}"),
        }
    }
}
