//! Table names from the pipeline file, checked at compile time so that the
//! SQL we build from them can never be injected into.

use std::fmt;

/// A checked `schema.table` name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    schema: String,
    table: String,
}

impl TableName {
    /// Parses `table` or `schema.table`; each part is a lower-case SQL
    /// identifier (`[a-z_][a-z0-9_]*`, at most 63 bytes).
    pub fn parse(name: &str) -> Result<TableName, String> {
        let (schema, table) = name.split_once('.').unwrap_or(("public", name));
        for part in [schema, table] {
            if !is_identifier(part) {
                return Err(format!(
                    "{part:?} is not a plain SQL identifier (lower-case letters, digits, _; \
                     at most 63 characters, not starting with a digit)"
                ));
            }
        }
        Ok(TableName {
            schema: schema.to_string(),
            table: table.to_string(),
        })
    }
}

/// Whether `s` is a plain lower-case SQL identifier.
pub fn is_identifier(s: &str) -> bool {
    s.len() <= 63
        && s.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl std::str::FromStr for TableName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TableName::parse(s)
    }
}

impl fmt::Display for TableName {
    /// Quoted, ready for SQL: `"public"."ts_measure"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\".\"{}\"", self.schema, self.table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names_and_refuses_the_rest() {
        assert_eq!(
            TableName::parse("public.ts_measure").unwrap().to_string(),
            "\"public\".\"ts_measure\""
        );
        assert_eq!(
            TableName::parse("cmd_ack").unwrap().to_string(),
            "\"public\".\"cmd_ack\""
        );
        for bad in ["", "a.b.c", "Ts", "x;drop table y", "1abc", "a.\"b\""] {
            assert!(TableName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
