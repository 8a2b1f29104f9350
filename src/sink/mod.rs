//! Sinks: where committed messages end. A sink knows nothing of MQTT; it
//! commits rows and settles delivery tokens.

pub mod postgres;
