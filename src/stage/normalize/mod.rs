//! The `normalize` stage: picks a payload's format and turns the document
//! into rows (`ts_measure` points or one `cmd_ack` row). One file per format,
//! one `match` over them in [`format`]; the stage itself is in [`stage`].

pub mod ack_v1;
pub mod fields;
pub mod format;
pub mod parsec_v1;
pub mod point_type;
pub mod stage;
pub mod timestamp;
pub mod v1;

pub use format::{Format, Output};
pub use stage::{FormatSpec, Normalize};
