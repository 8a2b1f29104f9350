//! Where messages come from: the MQTT source and the topic pattern that
//! turns a topic into envelope captures.

pub mod admit;
pub mod mqtt;
pub mod topic;
