//! From pipeline file to [`Plan`](crate::graph::plan::Plan): every check adds
//! to one list of located errors, and all of them are returned at once.

mod checks;
mod lints;
mod pipeline;
mod sinks;
mod source;
mod stages;

pub use pipeline::{compile, compile_with_env};

#[cfg(test)]
mod tests;
