//! The closed set of sink kinds.

use crate::stage::normalize::Output;

/// What a sink writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkKind {
    /// `ts_measure` rows, inserted once per (tenant, device, point, ts).
    Timeseries,
    /// `cmd_ack` rows, upserted on (tenant, device, cmd_id).
    AckUpsert,
    /// `ingest_errors` rows: every rejection with its original bytes.
    DeadLetter,
}

impl SinkKind {
    /// Every kind.
    pub const ALL: [SinkKind; 3] = [
        SinkKind::Timeseries,
        SinkKind::AckUpsert,
        SinkKind::DeadLetter,
    ];

    /// The `type:` in the pipeline file.
    pub fn name(self) -> &'static str {
        match self {
            SinkKind::Timeseries => "timeseries",
            SinkKind::AckUpsert => "ack_upsert",
            SinkKind::DeadLetter => "dead_letter",
        }
    }

    /// Looks a kind up by its `type:`.
    pub fn from_name(name: &str) -> Option<SinkKind> {
        SinkKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The table written when the file names none.
    pub fn default_table(self) -> &'static str {
        match self {
            SinkKind::Timeseries => "public.ts_measure",
            SinkKind::AckUpsert => "public.cmd_ack",
            SinkKind::DeadLetter => "public.ingest_errors",
        }
    }

    /// The rows this sink takes from a normalize stage (`None`: rejections).
    pub fn accepts(self) -> Option<Output> {
        match self {
            SinkKind::Timeseries => Some(Output::Measures),
            SinkKind::AckUpsert => Some(Output::Ack),
            SinkKind::DeadLetter => None,
        }
    }
}
