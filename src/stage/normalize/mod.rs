//! STUB — replaced by the stages helper.
pub mod format;
pub mod stage;
pub use stage::{FormatSpec, Normalize};
