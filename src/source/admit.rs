//! Admission: what the source does with one received message before any
//! stage sees it. The payload size limit comes first, then the topic
//! pattern; a message refused by either is a dead letter (`too_large`,
//! `bad_topic`), never a silent drop.
//!
//! The MQTT source and the offline tools (`runner dry-run`, `runner test`)
//! both call [`admit`], so a dry run refuses exactly what the runner refuses.

use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;

use crate::delivery::DeliveryToken;
use crate::envelope::{Body, Envelope, Reason};
use crate::graph::plan::SourcePlan;

/// The dead-letter reasons admission can give, for documentation and graphs.
pub const REASONS: [Reason; 2] = [Reason::BadTopic, Reason::TooLarge];

/// Where an admitted message goes.
#[derive(Debug)]
pub enum Admission {
    /// Into the pipeline, to `SourcePlan::next`.
    Next(Envelope),
    /// Straight to the dead-letter sink: its body is `Body::Rejected`.
    DeadLetter(Envelope),
}

/// Builds the envelope for one message received on `topic` and decides
/// where it goes: too large first, then a topic that does not fit.
pub fn admit(
    plan: &SourcePlan,
    topic: Arc<str>,
    payload: Bytes,
    token: DeliveryToken,
) -> Admission {
    let captures = plan.topic.matches(&topic);
    let matched = captures.is_some();
    let envelope = Envelope {
        topic: topic.clone(),
        captures: captures.unwrap_or_default(),
        payload,
        received_at: Utc::now(),
        body: Body::Raw,
        token,
    };
    if envelope.payload.len() > plan.max_payload_bytes {
        let detail = format!(
            "payload is {} bytes; the limit is {} (source.max_payload_bytes)",
            envelope.payload.len(),
            plan.max_payload_bytes
        );
        Admission::DeadLetter(envelope.reject(Reason::TooLarge, detail))
    } else if !matched {
        let detail = plan.topic.explain_mismatch(&topic);
        Admission::DeadLetter(envelope.reject(Reason::BadTopic, detail))
    } else {
        Admission::Next(envelope)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::envelope::Body;
    use crate::graph::compile::compile_with_env;

    fn admit_one(topic: &str, payload: &[u8]) -> Admission {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/traksense.yaml");
        let plan = compile_with_env(&file, &|_| None).expect("shipped pipeline compiles");
        admit(
            &plan.source,
            Arc::from(topic),
            Bytes::copy_from_slice(payload),
            DeliveryToken::detached(),
        )
    }

    fn reason(admission: Admission) -> Option<Reason> {
        match admission {
            Admission::Next(_) => None,
            Admission::DeadLetter(e) => match e.body {
                Body::Rejected(r) => Some(r.reason),
                _ => panic!("a dead letter carries its rejection"),
            },
        }
    }

    #[test]
    fn size_first_then_topic_then_into_the_pipeline() {
        let big = vec![b' '; 262_145];
        assert_eq!(reason(admit_one("nowhere", &big)), Some(Reason::TooLarge));
        assert_eq!(
            reason(admit_one("traksense/a/b/telem", b"{}")),
            Some(Reason::BadTopic)
        );
        let fits = vec![b' '; 262_144];
        match admit_one("traksense/t/s/d/telem", &fits) {
            Admission::Next(e) => assert_eq!(e.tenant(), Some("t")),
            other => panic!("{other:?}"),
        }
    }
}
