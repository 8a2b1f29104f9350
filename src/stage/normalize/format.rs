//! STUB — replaced by the stages helper.
/// Closed set of payload formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// TrakSense v1 telemetry.
    V1,
    /// Parsec controllers.
    ParsecV1,
    /// TrakSense v1 command acknowledgement.
    AckV1,
}
/// What a format produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Rows for `ts_measure`.
    Measures,
    /// A row for `cmd_ack`.
    Ack,
}
impl Format {
    /// Every format.
    pub const ALL: [Format; 3] = [Format::V1, Format::ParsecV1, Format::AckV1];
    /// Name in the pipeline file.
    pub fn name(self) -> &'static str {
        match self {
            Format::V1 => "v1",
            Format::ParsecV1 => "parsec_v1",
            Format::AckV1 => "ack_v1",
        }
    }
    /// Looks a format up by name.
    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }
    /// What it produces.
    pub fn output(self) -> Output {
        match self {
            Format::AckV1 => Output::Ack,
            _ => Output::Measures,
        }
    }
}
