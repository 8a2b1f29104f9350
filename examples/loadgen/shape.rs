//! The load itself: which connection sends which message from which device,
//! its `ts`, its topic and its exact bytes. Publishing and COPY both take
//! their data from here, so the ceilings and the runner see the same rows.
//!
//! Guarantees: message `i` has the values `i×P + j + 0.5` (unique in a run);
//! a device is owned by one connection, whose [`Clocks`] give it strictly
//! increasing millisecond timestamps, so no two rows of a run share
//! (tenant, device, point, ts).

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};

/// The site segment of every topic (sites do not matter to the runner's cost).
pub const SITE: &str = "site1";
/// The unit of every point.
pub const UNIT: &str = "C";
/// The `meta` object of every message, stored with each of its rows.
pub const META: &str = r#"{"fw":"1.0.0","src":"loadgen"}"#;
/// Most points per message the v1 contract accepts (`max_points`).
const MAX_POINTS: u32 = 1000;
/// Values are exact in an f64 up to 2^53.
const MAX_EXACT_VALUE: u64 = 1 << 53;

/// What to send; validated once by [`Shape::validated`].
#[derive(Debug, Clone)]
pub struct Shape {
    /// Telemetry messages in the run.
    pub messages: u64,
    /// Points per message.
    pub points: u32,
    /// Tenants, `tenant0…`.
    pub tenants: u32,
    /// Devices per tenant, `dev0…`.
    pub devices: u32,
    /// Client (or COPY) connections sharing the devices.
    pub connections: u32,
    /// Extra invalid payloads.
    pub invalid: u64,
    /// Extra command ACKs, each published twice.
    pub dup_acks: u64,
    /// Prefix of client ids and command ids.
    pub run_id: String,
}

impl Shape {
    /// The shape, or why it cannot run.
    pub fn validated(self) -> Result<Shape, String> {
        let mut problems = Vec::new();
        if self.messages == 0 {
            problems.push("--messages must be at least 1".to_owned());
        }
        if !(1..=MAX_POINTS).contains(&self.points) {
            problems.push(format!("--points must be 1..={MAX_POINTS}"));
        }
        if self.tenants == 0 || self.devices == 0 {
            problems.push("--tenants and --devices must be at least 1".to_owned());
        }
        if self.connections == 0 || u64::from(self.connections) > self.device_count() {
            problems.push(format!(
                "--connections must be 1..={} (each connection owns at least one device)",
                self.device_count()
            ));
        }
        if self.messages.saturating_mul(u64::from(self.points)) >= MAX_EXACT_VALUE {
            problems.push("--messages × --points must stay below 2^53".to_owned());
        }
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(problems.join("; "))
        }
    }

    /// Devices across all tenants.
    pub fn device_count(&self) -> u64 {
        u64::from(self.tenants) * u64::from(self.devices)
    }

    /// The device (0-based, across tenants) that sends message `i`.
    pub fn device_of(&self, i: u64) -> u64 {
        i % self.device_count()
    }

    /// The connection that owns `device`.
    pub fn owner(&self, device: u64) -> u32 {
        // Below `connections`, a u32.
        (device % u64::from(self.connections)) as u32
    }

    /// The messages connection `c` sends, in order.
    pub fn messages_of(&self, c: u32) -> impl Iterator<Item = u64> + '_ {
        (0..self.messages).filter(move |&i| self.owner(self.device_of(i)) == c)
    }

    /// Tenant and device names of `device`.
    pub fn names(&self, device: u64) -> (String, String) {
        let devices = u64::from(self.devices);
        (
            format!("tenant{}", device / devices),
            format!("dev{}", device % devices),
        )
    }

    /// The telemetry topic of every device, indexed by device.
    pub fn telem_topics(&self) -> Vec<String> {
        (0..self.device_count())
            .map(|device| self.topic(device, "telem"))
            .collect()
    }

    /// `traksense/{tenant}/site1/{device}/{kind}`.
    pub fn topic(&self, device: u64, kind: &str) -> String {
        let (tenant, dev) = self.names(device);
        format!("traksense/{tenant}/{SITE}/{dev}/{kind}")
    }

    /// Points that must end up in `ts_measure`.
    pub fn valid_points(&self) -> u64 {
        self.messages * u64::from(self.points)
    }

    /// Invalid payloads plus both copies of every ACK.
    pub fn extra_publishes(&self) -> u64 {
        self.invalid + 2 * self.dup_acks
    }

    /// Every message published in the run.
    pub fn total_publishes(&self) -> u64 {
        self.messages + self.extra_publishes()
    }

    /// The v1 telemetry payload of message `i`, stamped `ts_ms`.
    pub fn telemetry(&self, i: u64, ts_ms: i64) -> Vec<u8> {
        let mut out = String::with_capacity(96 + 48 * self.points as usize);
        out.push_str(r#"{"schema":"v1","ts":""#);
        out.push_str(&rfc3339_ms(ts_ms));
        out.push_str(r#"","points":["#);
        for j in 0..self.points {
            if j > 0 {
                out.push(',');
            }
            let value = i * u64::from(self.points) + u64::from(j);
            // Writing to a String cannot fail.
            let _ = write!(
                out,
                r#"{{"name":"p{j}","t":"float","v":{value}.5,"u":"{UNIT}"}}"#
            );
        }
        out.push_str(r#"],"meta":"#);
        out.push_str(META);
        out.push('}');
        out.into_bytes()
    }

    /// Appends the rows message `i` becomes, as `COPY … FROM STDIN` text
    /// (columns of [`COPY_COLUMNS`]).
    pub fn copy_rows(&self, i: u64, ts_ms: i64, out: &mut String) {
        let device = self.device_of(i);
        let (tenant, dev) = self.names(device);
        let ts = rfc3339_ms(ts_ms);
        for j in 0..self.points {
            let value = i * u64::from(self.points) + u64::from(j);
            // Writing to a String cannot fail.
            let _ = writeln!(
                out,
                "{tenant}\t{SITE}\t{dev}\tp{j}\t{ts}\t{value}.5\t{UNIT}\t{META}"
            );
        }
    }

    /// Invalid payload number `m`; the four kinds rotate.
    pub fn invalid_payload(&self, m: u64, ts_ms: i64) -> Vec<u8> {
        let ts = rfc3339_ms(ts_ms);
        match m % 4 {
            0 => format!("{{not json {m}"),
            1 => format!(r#"{{"schema":"v9","ts":"{ts}","n":{m}}}"#),
            2 => format!(
                r#"{{"schema":"v1","ts":"2025-10-07T15:30:00","points":[{{"name":"p","v":{m}}}]}}"#
            ),
            _ => format!(r#"{{"schema":"v1","ts":"{ts}","points":[],"n":{m}}}"#),
        }
        .into_bytes()
    }

    /// Command ACK number `m` (published twice).
    pub fn ack_payload(&self, m: u64, ts_ms: i64) -> Vec<u8> {
        format!(
            r#"{{"schema":"v1","cmd_id":"{}-cmd{m}","ok":true,"ts_exec":"{}","err":null}}"#,
            self.run_id,
            rfc3339_ms(ts_ms)
        )
        .into_bytes()
    }
}

/// The columns [`Shape::copy_rows`] writes, in order.
pub const COPY_COLUMNS: &str = "tenant_id, site_id, device_id, point_id, ts, v_num, unit, meta";

/// Per-device timestamps: the publish time, or 1 ms past the device's
/// previous `ts` when it published within the same millisecond.
pub struct Clocks {
    /// Last `ts` given to each device (ms since the epoch).
    last_ms: Vec<i64>,
    /// Largest `ts − now` given out: how far ahead of the clock a device ran.
    pub max_lead_ms: i64,
}

impl Clocks {
    /// Clocks for `devices` devices.
    pub fn new(devices: u64) -> Clocks {
        Clocks {
            last_ms: vec![i64::MIN; devices as usize],
            max_lead_ms: 0,
        }
    }

    /// The `ts` of `device`'s next message.
    pub fn stamp(&mut self, device: u64) -> i64 {
        let now = Utc::now().timestamp_millis();
        let last = &mut self.last_ms[device as usize];
        let ts = now.max(last.saturating_add(1));
        *last = ts;
        self.max_lead_ms = self.max_lead_ms.max(ts - now);
        ts
    }
}

/// `2026-12-03T17:00:00.123Z`.
pub fn rfc3339_ms(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}
