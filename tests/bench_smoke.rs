//! `bench/run --smoke` keeps working (issue 6): every scenario but the
//! profile, with tiny counts and the debug build the test suite already
//! made, so the benchmark cannot rot between the hand-run full measurements.
//! It checks what a full run checks (every point stored once, every dead
//! letter and ACK row there, every message acknowledged); its speed figures
//! mean nothing here and are not looked at.

use std::process::Command;

#[test]
fn bench_smoke_runs_every_scenario_and_its_checks_pass() {
    let repo = env!("CARGO_MANIFEST_DIR");
    let output = Command::new("bash")
        .arg(format!("{repo}/bench/run"))
        .args(["--smoke", "--profile-build", "dev"])
        .current_dir(repo)
        .output()
        .expect("bash runs bench/run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "bench/run --smoke failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    for figure in [
        "Mosquitto alone, 1 point/msg",
        "PostgreSQL alone: COPY",
        "runner e2e, 1 point/msg",
        "runner e2e, 10 points/msg",
        "latency device → commit",
        "burst",
        "Checks: every e2e run stored exactly its points",
    ] {
        assert!(
            stdout.contains(figure),
            "no {figure:?} in the table:\n{stdout}\n{stderr}"
        );
    }
}
