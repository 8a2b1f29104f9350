//! Lenient scalars: after interpolation `${INGEST_BATCH_SIZE:-5000}` is the
//! string `"5000"`, so numeric and boolean fields accept a string that parses.

use std::fmt::Display;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

#[derive(Deserialize)]
#[serde(untagged)]
enum Lenient<T> {
    Typed(T),
    Text(String),
}

/// Deserializes a `T` given as itself or as a string that parses as one.
pub fn lenient<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + FromStr,
    T::Err: Display,
{
    match Lenient::<T>::deserialize(deserializer)? {
        Lenient::Typed(v) => Ok(v),
        Lenient::Text(s) => s
            .trim()
            .parse()
            .map_err(|e| serde::de::Error::custom(format!("invalid value {s:?}: {e}"))),
    }
}

/// [`lenient`] for an optional field (absent or `null` is `None`).
pub fn lenient_opt<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + FromStr,
    T::Err: Display,
{
    match Option::<Lenient<T>>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Lenient::Typed(v)) => Ok(Some(v)),
        Some(Lenient::Text(s)) if s.trim().is_empty() => Ok(None),
        Some(Lenient::Text(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("invalid value {s:?}: {e}"))),
    }
}
