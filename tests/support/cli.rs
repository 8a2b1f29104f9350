//! The `runner` binary as a command-line tool: one run with arguments and
//! standard input, its exit code and output. Shared by the tests of the
//! pipeline-editing tools (tests/tools.rs, tests/dry_run_live.rs).

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

/// The binary under test.
pub const RUNNER: &str = env!("CARGO_BIN_EXE_runner");
/// The crate root: runs start there, so paths in output are the relative
/// paths given.
pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The shipped pipeline, relative to [`ROOT`].
pub const SHIPPED: &str = "pipelines/traksense.yaml";

/// What one run of the binary did.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// The variables pipeline files read, unset so that output is the same on
/// every machine (`runner graph` shows the broker address, for one).
pub const PIPELINE_VARIABLES: [&str; 10] = [
    "MQTT_URL",
    "MQTT_CLIENT_ID",
    "MQTT_USERNAME",
    "MQTT_PASSWORD",
    "DATABASE_URL",
    "INGEST_QUEUE_MAX",
    "INGEST_BATCH_SIZE",
    "INGEST_BATCH_MS",
    "DB_POOL_MAX",
    "CATALOGUE_UNSET_BROKER_URL",
];

/// Runs `runner ARGS` from the crate root (so paths in the output are the
/// relative paths given), with `stdin` as its standard input.
pub fn runner(args: &[&str], stdin: &[u8]) -> Run {
    let mut command = Command::new(RUNNER);
    for name in PIPELINE_VARIABLES {
        command.env_remove(name);
    }
    let mut child = command
        .args(args)
        .current_dir(ROOT)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runner starts");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(stdin)
        .expect("write stdin");
    let out = child.wait_with_output().expect("runner ends");
    Run {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
    }
}

/// Each line of `text` as one JSON document.
pub fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}
