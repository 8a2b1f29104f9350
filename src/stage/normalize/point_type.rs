//! A v1 point's type `t` and how a value `v` maps to its `ts_measure`
//! column: the closed set of seven types, the rule each puts on `v`, and the
//! inference used when `t` is absent.
//!
//! Devices send `float`, `num` and `int` for the same column (`v_num`): the
//! names differ by firmware, the storage does not. `text` and `enum` share
//! `v_text` the same way.

use serde_json::Value;

use crate::envelope::PointValue;

/// A point's declared type `t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointType {
    /// `float`: a number, to `v_num`.
    Float,
    /// `num`: a number, to `v_num`.
    Num,
    /// `int`: an integer, to `v_num`.
    Int,
    /// `bool`: a boolean, to `v_bool`.
    Bool,
    /// `text`: a string, to `v_text`.
    Text,
    /// `enum`: a string from a device-defined set, to `v_text`.
    Enum,
    /// `json`: any value, serialized to `v_json`.
    Json,
}

impl PointType {
    /// Every type, in the order details list them.
    pub const ALL: [PointType; 7] = [
        PointType::Float,
        PointType::Num,
        PointType::Int,
        PointType::Bool,
        PointType::Text,
        PointType::Enum,
        PointType::Json,
    ];

    /// The type as written in `t`.
    pub fn name(self) -> &'static str {
        match self {
            PointType::Float => "float",
            PointType::Num => "num",
            PointType::Int => "int",
            PointType::Bool => "bool",
            PointType::Text => "text",
            PointType::Enum => "enum",
            PointType::Json => "json",
        }
    }

    /// The type `t` names, if it names one.
    pub fn from_value(t: &Value) -> Option<PointType> {
        let name = t.as_str()?;
        PointType::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// What `v` must be, as a detail says it.
    pub fn expects(self) -> &'static str {
        match self {
            PointType::Float | PointType::Num => "a number",
            PointType::Int => "an integer",
            PointType::Bool => "a boolean",
            PointType::Text | PointType::Enum => "a string",
            PointType::Json => "any JSON value",
        }
    }

    /// `v` as this type's column value, or `None` when it does not fit.
    pub fn value(self, v: &Value) -> Option<PointValue> {
        match (self, v) {
            (PointType::Float | PointType::Num, Value::Number(n)) => {
                n.as_f64().map(PointValue::Num)
            }
            // JSON Schema's `integer` also accepts 2.0; so do we.
            (PointType::Int, Value::Number(n)) => n
                .as_f64()
                .filter(|f| n.is_i64() || n.is_u64() || f.fract() == 0.0)
                .map(PointValue::Num),
            (PointType::Bool, Value::Bool(b)) => Some(PointValue::Bool(*b)),
            (PointType::Text | PointType::Enum, Value::String(s)) => {
                Some(PointValue::Text(s.clone()))
            }
            (PointType::Json, v) => Some(PointValue::Json(v.to_string())),
            _ => None,
        }
    }
}

/// The value of a point without `t`: its column follows the JSON type;
/// `None` for `null`, which has no column without `t: json`.
pub fn infer(v: &Value) -> Option<PointValue> {
    match v {
        Value::Null => None,
        Value::Bool(b) => Some(PointValue::Bool(*b)),
        Value::Number(n) => n.as_f64().map(PointValue::Num),
        Value::String(s) => Some(PointValue::Text(s.clone())),
        Value::Array(_) | Value::Object(_) => Some(PointValue::Json(v.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in PointType::ALL {
            assert_eq!(PointType::from_value(&json!(kind.name())), Some(kind));
        }
        assert_eq!(PointType::from_value(&json!("double")), None);
        assert_eq!(PointType::from_value(&json!(1)), None);
    }

    #[test]
    fn int_takes_whole_numbers_only() {
        assert_eq!(
            PointType::Int.value(&json!(-4)),
            Some(PointValue::Num(-4.0))
        );
        assert_eq!(
            PointType::Int.value(&json!(2.0)),
            Some(PointValue::Num(2.0))
        );
        assert_eq!(PointType::Int.value(&json!(2.5)), None);
        assert_eq!(PointType::Int.value(&json!("2")), None);
    }

    #[test]
    fn values_must_fit_their_type() {
        assert_eq!(PointType::Float.value(&json!(true)), None);
        assert_eq!(PointType::Bool.value(&json!(0)), None);
        assert_eq!(PointType::Enum.value(&json!(null)), None);
        assert_eq!(
            PointType::Json.value(&json!({"a": [1]})),
            Some(PointValue::Json(r#"{"a":[1]}"#.into()))
        );
        assert_eq!(infer(&json!(null)), None);
        assert_eq!(infer(&json!("x")), Some(PointValue::Text("x".into())));
    }
}
