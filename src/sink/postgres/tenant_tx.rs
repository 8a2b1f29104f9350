//! The one way sinks open a transaction: as the writer role, with
//! `app.tenant_id` set, so row-level security checks every row written.
//!
//! `set_config('role', …, true)` is `SET LOCAL ROLE` with the role as a bind
//! parameter; both settings end with the transaction, so a pooled connection
//! never carries one tenant's setting into another's transaction.

use sqlx::{PgPool, Postgres, Transaction};

/// Begins a transaction for `tenant` (`None`: rows with no tenant, such as
/// dead letters of topics that gave none) as `role`.
pub async fn begin(
    pool: &PgPool,
    role: &str,
    tenant: Option<&str>,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT set_config('role', $1, true), set_config('app.tenant_id', $2, true)")
        .bind(role)
        .bind(tenant.unwrap_or(""))
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}
