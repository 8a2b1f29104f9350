//! STUB — replaced by the stages helper.
pub mod format;
pub mod stage;
pub use format::{Format, Output};
pub use stage::{FormatSpec, Normalize};
