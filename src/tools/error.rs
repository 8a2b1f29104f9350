//! Why a tool could not do what it was asked, as opposed to what it found:
//! an input file that cannot be read, a test file that is not there. The
//! `runner` binary reports these as usage errors (exit status 2).

use std::path::PathBuf;

/// A tool's own failure, with the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// A payload file or directory could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Input {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Standard input could not be read.
    #[error("cannot read standard input: {0}")]
    Stdin(#[source] std::io::Error),
    /// No test file beside a pipeline.
    #[error("{}: no test cases: expected them in {}", pipeline.display(), expected.display())]
    NoCases {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Where its cases should be.
        expected: PathBuf,
    },
    /// A plan that cannot be walked (built by hand, not compiled).
    #[error(transparent)]
    DryRun(#[from] super::dry_run::DryRunError),
}
