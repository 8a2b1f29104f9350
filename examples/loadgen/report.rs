//! What a run measured: ordered `key=value` figures for scripts (one
//! `RESULT` line on stdout), the same as a readable list on stderr, and the
//! shortfalls that make the run fail.

use std::time::Duration;

use crate::shape::Shape;

/// Figures and failures of one run.
pub struct Report {
    /// Figures in the order they were measured.
    fields: Vec<(String, String)>,
    /// What went wrong (missing PUBACKs, rows, deliveries; deadline).
    failures: Vec<String>,
}

impl Report {
    /// A report that starts with the load's shape.
    pub fn new(shape: &Shape) -> Report {
        let mut report = Report {
            fields: Vec::new(),
            failures: Vec::new(),
        };
        report.set("messages", shape.messages);
        report.set("points_per_message", shape.points);
        report.set("tenants", shape.tenants);
        report.set("devices_per_tenant", shape.devices);
        report.set("connections", shape.connections);
        report.set("invalid", shape.invalid);
        report.set("dup_acks", shape.dup_acks);
        report
    }

    /// Records the mode first, as scripts look for it.
    pub fn mode(&mut self, mode: &str) {
        self.fields.insert(0, ("mode".to_owned(), mode.to_owned()));
    }

    /// Records (or replaces) a figure.
    pub fn set(&mut self, key: impl Into<String>, value: impl ToString) {
        let (key, value) = (key.into(), value.to_string());
        match self.fields.iter_mut().find(|(k, _)| *k == key) {
            Some(field) => field.1 = value,
            None => self.fields.push((key, value)),
        }
    }

    /// Records seconds with microsecond precision.
    pub fn seconds(&mut self, key: &str, duration: Duration) {
        self.set(key, format!("{:.6}", duration.as_secs_f64()));
    }

    /// Records `count / duration` per second, rounded to one unit.
    pub fn rate(&mut self, key: &str, count: u64, duration: Duration) {
        let secs = duration.as_secs_f64();
        let rate = if secs > 0.0 { count as f64 / secs } else { 0.0 };
        self.set(key, format!("{rate:.0}"));
    }

    /// Records a shortfall; the run exits 1.
    pub fn fail(&mut self, why: impl Into<String>) {
        let why = why.into();
        eprintln!("loadgen: FAILED: {why}");
        self.failures.push(why);
    }

    /// Whether anything fell short.
    pub fn failed(&self) -> bool {
        !self.failures.is_empty()
    }

    /// This process's CPU time (user + system), for the load generator's
    /// own share of the machine.
    pub fn loadgen_cpu(&mut self) {
        if let Some(secs) = cpu_seconds("self") {
            self.set("loadgen_cpu_s", format!("{secs:.3}"));
        }
    }

    /// Prints the figures on stderr and the `RESULT` line on stdout.
    pub fn print(&self) {
        for (key, value) in &self.fields {
            eprintln!("  {key:<28} {value}");
        }
        let ok = if self.failed() { "false" } else { "true" };
        let line: Vec<String> = self
            .fields
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        println!("RESULT {} ok={ok}", line.join(" "));
    }
}

/// utime + stime of process `pid` (or `self`) from `/proc/PID/stat`, in
/// seconds (Linux; clock ticks of 1/100 s, USER_HZ on every arch we run).
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}
