//! STUB — replaced by the stages helper.
