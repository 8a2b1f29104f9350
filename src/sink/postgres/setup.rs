//! Getting the database ready before anything flows: create it when
//! missing, apply `migrations/`, and prove the writer role can be assumed,
//! so a misconfiguration fails at start with a clear message, not per batch.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

use crate::graph::plan::DatabasePlan;
use crate::secret::redact_url;

/// The migrations in `migrations/`, embedded at build time (no database is
/// needed to build).
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Why the database could not be prepared. Never holds the password.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The URL does not parse.
    #[error("database URL {url}: {source}")]
    Url {
        /// The URL, redacted.
        url: String,
        /// Why.
        source: sqlx::Error,
    },
    /// Cannot connect, or cannot create the database.
    #[error("cannot reach database {url}: {source}")]
    Connect {
        /// The URL, redacted.
        url: String,
        /// Why.
        source: sqlx::Error,
    },
    /// A migration failed.
    #[error("migrating {url}: {source}")]
    Migrate {
        /// The URL, redacted.
        url: String,
        /// Why.
        source: sqlx::migrate::MigrateError,
    },
    /// The writer role cannot be assumed.
    #[error("cannot write as role {role:?} on {url}: {source}; create the role and GRANT it to the connecting user (migrations do this)")]
    Role {
        /// The role.
        role: String,
        /// The URL, redacted.
        url: String,
        /// Why.
        source: sqlx::Error,
    },
}

impl SetupError {
    /// Whether waiting may help: the server is unreachable or refusing
    /// connections for now (it is starting, restarting, or the network is
    /// down), as opposed to a wrong URL, a failed migration or a missing role.
    pub fn is_transient(&self) -> bool {
        match self {
            SetupError::Connect { source, .. } => {
                super::error::classify(source) == super::error::Disposition::Retry
            }
            _ => false,
        }
    }
}

/// Creates (if allowed and missing) and migrates the database, and returns
/// a pool for the sinks.
pub async fn prepare(db: &DatabasePlan) -> Result<PgPool, SetupError> {
    let url = redact_url(db.url.expose());
    let options = PgConnectOptions::from_str(db.url.expose())
        .map_err(|source| SetupError::Url {
            url: url.clone(),
            source,
        })?
        .log_statements(log::LevelFilter::Trace)
        .log_slow_statements(log::LevelFilter::Warn, Duration::from_secs(5));
    if db.create_if_missing {
        create_database(&options)
            .await
            .map_err(|source| SetupError::Connect {
                url: url.clone(),
                source,
            })?;
    }
    let pool = PgPoolOptions::new()
        .max_connections(db.pool_max)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(|source| SetupError::Connect {
            url: url.clone(),
            source,
        })?;
    if db.migrate {
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|source| SetupError::Migrate {
                url: url.clone(),
                source,
            })?;
    }
    let mut tx = pool.begin().await.map_err(|source| SetupError::Connect {
        url: url.clone(),
        source,
    })?;
    sqlx::query("SELECT set_config('role', $1, true)")
        .bind(&db.role)
        .execute(&mut *tx)
        .await
        .map_err(|source| SetupError::Role {
            role: db.role.clone(),
            url: url.clone(),
            source,
        })?;
    let _ = tx.rollback().await;
    Ok(pool)
}

/// Creates the database named in `options` when it does not exist,
/// connecting to the server's `postgres` database to do so.
async fn create_database(options: &PgConnectOptions) -> Result<(), sqlx::Error> {
    let name = options.get_database().unwrap_or("postgres").to_string();
    let mut conn = PgConnection::connect_with(&options.clone().database("postgres")).await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        match sqlx::query(&sql).execute(&mut conn).await {
            Ok(_) => tracing::info!(database = %name, "created database"),
            // Someone else created it meanwhile: fine.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
            Err(e) => return Err(e),
        }
    }
    conn.close().await
}

/// Checks every second that the database answers (`SELECT 1` within 2 s)
/// and records the outcome for `/readyz`, until aborted.
pub async fn probe(pool: PgPool, health: std::sync::Arc<crate::telemetry::Health>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let answered = tokio::time::timeout(
            Duration::from_secs(2),
            sqlx::query("SELECT 1").execute(&pool),
        )
        .await;
        let up = matches!(answered, Ok(Ok(_)));
        if up != health.db_up.load(std::sync::atomic::Ordering::Relaxed) {
            if up {
                tracing::info!("database reachable again");
            } else {
                tracing::warn!("database unreachable");
            }
        }
        health.set_db_up(up);
    }
}
