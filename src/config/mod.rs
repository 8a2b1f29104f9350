//! The pipeline file: its serde model, loading with located errors, and
//! environment interpolation. Nothing past `graph::compile` reads these raw
//! types; the runtime sees only the validated `graph::Plan`.

pub mod de;
pub mod error;
pub mod interpolate;
pub mod load;
pub mod locate;
pub mod model;
pub mod schema;
