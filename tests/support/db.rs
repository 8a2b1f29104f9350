//! `TestDb`: a private PostgreSQL database for one test, as `#[sqlx::test]` does.
//!
//! Why: tests must not see each other's rows, and several test binaries (and
//! other worktrees' test runs) share one server. Each `TestDb` is a fresh
//! database named after its test, created from `template0` so that whatever
//! someone left in `template1`, or a session connected to it, cannot leak in or
//! block the `CREATE DATABASE`.
//!
//! Guarantees:
//! - the name is `t_{test}_{pid}_{counter}`: lowercase `[a-z0-9_]`, at most 63
//!   bytes (PostgreSQL's identifier limit), unique among live processes;
//! - when the test passes, `Drop` removes the database with
//!   `DROP DATABASE ... WITH (FORCE)`, which also ends connections the code
//!   under test still holds;
//! - when the test panics, the database is kept and its name printed, for
//!   inspection; the next run of the same test drops it (only databases of
//!   processes that no longer exist are touched, so a concurrent run of the
//!   same test elsewhere is safe).
//!
//! The helper pool is capped at 3 connections, like sqlx's test pools, so a
//! suite of parallel tests stays far below `max_connections`. It logs in as
//! the admin user, a superuser, so it sees every row whatever row-level
//! security the code under test enables.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{Connection, FromRow, PgConnection, PgPool};

/// Used when `TEST_DATABASE_ADMIN_URL` is unset: the machine's local server,
/// trust-authenticated on loopback (see `scripts/services.sh`).
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// PostgreSQL truncates longer identifiers, which would make names collide.
const MAX_NAME_LEN: usize = 63;

/// Connections the helper pool may open; small on purpose (see module doc).
const POOL_MAX_CONNECTIONS: u32 = 3;

/// Bound on every connect and statement of the admin connection.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// `statement_timeout` of the helper pool, so a test query stuck behind a
/// lock fails instead of hanging the suite.
const POOL_STATEMENT_TIMEOUT: &str = "60s";

/// SQLSTATE `duplicate_database`.
const DUPLICATE_DATABASE: &str = "42P04";

/// Distinguishes the databases of one process; with the pid it makes names
/// unique among live processes.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A database that exists for the lifetime of one test.
pub struct TestDb {
    /// The database's name, as in `pg_database`.
    name: String,
    /// URL of this database with the admin credentials; given to the code
    /// under test.
    url: String,
    /// Where `Drop` connects to remove the database.
    admin_url: String,
    /// Small superuser pool for the test's own checks.
    pool: PgPool,
}

impl TestDb {
    /// Creates a fresh database for `test_name` and connects a pool to it.
    ///
    /// Panics with the reason if the server cannot be reached or refuses:
    /// a test without its database cannot say anything useful.
    pub async fn create(test_name: &str) -> TestDb {
        let admin_url = admin_url();
        let pid = std::process::id();
        let name = database_name(test_name, pid, NEXT_ID.fetch_add(1, Ordering::Relaxed));

        let mut admin = connect_admin(&admin_url).await;
        drop_leftovers(&mut admin, test_name, pid).await;
        create_database(&mut admin, &name).await;
        // Closing politely is best-effort; the database exists either way.
        let _ = admin.close().await;

        let url = database_url(&admin_url, &name);
        let options = PgConnectOptions::from_str(&url)
            .unwrap_or_else(|e| panic!("TestDb: bad URL for {name}: {e}"))
            .options([("statement_timeout", POOL_STATEMENT_TIMEOUT)]);
        let pool = PgPoolOptions::new()
            .max_connections(POOL_MAX_CONNECTIONS)
            .acquire_timeout(ADMIN_TIMEOUT)
            .connect_with(options)
            .await
            .unwrap_or_else(|e| panic!("TestDb: cannot connect to new database {name}: {e}"));

        TestDb {
            name,
            url,
            admin_url,
            pool,
        }
    }

    /// The database's name, e.g. to find it in `pg_database` or in a log.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A URL for this database (admin credentials), for the code under test.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The capped superuser pool, for any query the helpers below don't cover
    /// (`sqlx::query_as::<_, (String, f64)>(...).fetch_all(db.pool())`).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Runs `sql` (one or more statements, no parameters) and returns the
    /// rows affected; for setting up or deliberately breaking a schema.
    pub async fn execute(&self, sql: &str) -> u64 {
        sqlx::raw_sql(sql)
            .execute(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("TestDb {}: {sql}: {e}", self.name))
            .rows_affected()
    }

    /// Runs a query returning one `bigint` (`select count(*) from ...`).
    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("TestDb {}: {sql}: {e}", self.name))
    }

    /// Runs a query and maps every row, e.g. to tuples:
    /// `db.fetch_all::<(String, f64)>("select point_id, v_num from ts_measure")`.
    pub async fn fetch_all<T>(&self, sql: &str) -> Vec<T>
    where
        T: for<'r> FromRow<'r, PgRow> + Send + Unpin,
    {
        sqlx::query_as::<_, T>(sql)
            .fetch_all(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("TestDb {}: {sql}: {e}", self.name))
    }
}

impl Drop for TestDb {
    /// Removes the database if the test passed; keeps it if it panicked.
    ///
    /// The drop runs on a thread of its own with its own small runtime:
    /// `Drop` cannot `.await`, and blocking on the test's runtime from inside
    /// it would panic. The test's pool is simply let go; `WITH (FORCE)` ends
    /// its connections along with any the code under test still holds.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "TestDb: test failed; keeping database {} for inspection \
                 (psql {}); the next run of this test drops it",
                self.name,
                redacted(&self.url)
            );
            return;
        }
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let outcome = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut admin = connect_admin(&admin_url).await;
                let result = drop_database(&mut admin, &name).await;
                let _ = admin.close().await;
                result
            })
        })
        .join();
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("TestDb: could not drop database {}: {e}", self.name),
            Err(_) => eprintln!("TestDb: dropping database {} panicked", self.name),
        }
    }
}

/// Whether a database of that name exists, asked over a fresh admin
/// connection; lets tests check what `TestDb` promises.
pub async fn database_exists(name: &str) -> bool {
    let mut admin = connect_admin(&admin_url()).await;
    let exists = sqlx::query_scalar::<_, bool>(
        "select exists (select 1 from pg_database where datname = $1)",
    )
    .bind(name)
    .fetch_one(&mut admin)
    .await
    .unwrap_or_else(|e| panic!("TestDb: cannot read pg_database: {e}"));
    let _ = admin.close().await;
    exists
}

/// The admin URL: `TEST_DATABASE_ADMIN_URL`, else [`DEFAULT_ADMIN_URL`].
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_ADMIN_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| DEFAULT_ADMIN_URL.to_owned())
}

/// `t_{sanitized test name}_{pid}_{n}`, at most 63 bytes.
///
/// The test name is lowercased, every run of other characters than
/// `[a-z0-9]` becomes one `_`, and a name too long for the budget is cut and
/// given an 8-hex-digit hash of the whole name, so two long names that share
/// a prefix still get different databases.
pub fn database_name(test_name: &str, pid: u32, n: u64) -> String {
    let stem = name_stem(test_name, pid, n);
    format!("t_{stem}_{pid}_{n}")
}

/// The part of [`database_name`] that depends on the test name only (for a
/// given width of the pid and counter).
fn name_stem(test_name: &str, pid: u32, n: u64) -> String {
    let mut stem = String::new();
    for c in test_name.chars() {
        if c.is_ascii_alphanumeric() {
            stem.push(c.to_ascii_lowercase());
        } else if !stem.ends_with('_') {
            stem.push('_');
        }
    }
    let stem = stem.trim_matches('_');
    let stem = if stem.is_empty() { "test" } else { stem };

    let fixed = format!("t__{pid}_{n}").len();
    let budget = MAX_NAME_LEN.saturating_sub(fixed);
    if stem.len() <= budget {
        return stem.to_owned();
    }
    let hash = format!("{:08x}", fnv1a(test_name.as_bytes()) as u32);
    let keep = budget.saturating_sub(hash.len() + 1);
    format!("{}_{hash}", stem[..keep].trim_end_matches('_'))
}

/// FNV-1a: a stable hash (unlike `DefaultHasher`, the same across runs and
/// toolchains), so a long test name keeps its database name between runs.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The admin URL with its database replaced by `name`.
fn database_url(admin_url: &str, name: &str) -> String {
    let mut url = url::Url::parse(admin_url)
        .unwrap_or_else(|e| panic!("TestDb: admin URL {} is invalid: {e}", redacted(admin_url)));
    url.set_path(name);
    url.to_string()
}

/// A URL safe to print: the password, if any, replaced.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Cannot fail: a URL that has a password can have another.
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "<unparsable URL>".to_owned(),
    }
}

/// Connects to the admin database; its statements time out after
/// [`ADMIN_TIMEOUT`], so creating or dropping a database cannot hang a test.
async fn connect_admin(admin_url: &str) -> PgConnection {
    let options = PgConnectOptions::from_str(admin_url)
        .unwrap_or_else(|e| panic!("TestDb: admin URL {} is invalid: {e}", redacted(admin_url)))
        .options([(
            "statement_timeout",
            format!("{}s", ADMIN_TIMEOUT.as_secs()).as_str(),
        )]);
    match tokio::time::timeout(ADMIN_TIMEOUT, PgConnection::connect_with(&options)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => panic!(
            "TestDb: cannot connect to {} (is PostgreSQL up? run scripts/services.sh): {e}",
            redacted(admin_url)
        ),
        Err(_) => panic!(
            "TestDb: connecting to {} took over {ADMIN_TIMEOUT:?}",
            redacted(admin_url)
        ),
    }
}

async fn create_database(admin: &mut PgConnection, name: &str) {
    let sql = format!(r#"create database "{name}" template template0"#);
    match sqlx::raw_sql(&sql).execute(&mut *admin).await {
        Ok(_) => {}
        // Same pid and counter as ours: left by an earlier process whose pid
        // has been reused, since our counter never repeats. Replace it.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(DUPLICATE_DATABASE) => {
            if let Err(e) = drop_database(admin, name).await {
                panic!("TestDb: cannot drop stale database {name}: {e}");
            }
            if let Err(e) = sqlx::raw_sql(&sql).execute(&mut *admin).await {
                panic!("TestDb: cannot create database {name}: {e}");
            }
        }
        Err(e) => panic!("TestDb: cannot create database {name}: {e}"),
    }
}

async fn drop_database(admin: &mut PgConnection, name: &str) -> Result<(), String> {
    let sql = format!(r#"drop database if exists "{name}" with (force)"#);
    sqlx::raw_sql(&sql)
        .execute(admin)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Drops the databases that earlier, now finished, runs of this test kept.
///
/// A database is this test's if its name is `t_{stem}_{pid}_{n}` with our
/// stem; it is left alone while process `pid` lives (a concurrent run in
/// another worktree) or is us.
async fn drop_leftovers(admin: &mut PgConnection, test_name: &str, our_pid: u32) {
    let names = sqlx::query_scalar::<_, String>(
        "select datname from pg_database where datname like 't\\_%' escape '\\'",
    )
    .fetch_all(&mut *admin)
    .await
    .unwrap_or_else(|e| panic!("TestDb: cannot list databases: {e}"));
    for name in names {
        let Some((pid, n)) = parse_name_suffix(&name) else {
            continue;
        };
        let ours = database_name(test_name, pid, n) == name;
        let owner_alive = pid == our_pid || std::path::Path::new(&format!("/proc/{pid}")).exists();
        if ours && !owner_alive {
            eprintln!("TestDb: dropping {name}, kept by an earlier failed run of this test");
            if let Err(e) = drop_database(admin, &name).await {
                eprintln!("TestDb: could not drop {name}: {e}");
            }
        }
    }
}

/// `(pid, n)` from a name ending in `_{pid}_{n}`.
fn parse_name_suffix(name: &str) -> Option<(u32, u64)> {
    let mut parts = name.rsplitn(3, '_');
    let n = parts.next()?.parse().ok()?;
    let pid = parts.next()?.parse().ok()?;
    Some((pid, n))
}

/// One `ingest_errors` row, as tests read it.
#[derive(Debug, sqlx::FromRow)]
pub struct DeadLetter {
    /// Null when the topic gave no tenant.
    pub tenant_id: Option<String>,
    /// The topic as published.
    pub topic: String,
    /// The reason code.
    pub reason: String,
    /// The human detail.
    pub detail: Option<String>,
    /// The exact bytes received.
    pub payload: Vec<u8>,
}

impl TestDb {
    /// Every dead letter, oldest first.
    pub async fn dead_letters(&self) -> Vec<DeadLetter> {
        self.fetch_all(
            "select tenant_id, topic, reason, detail, payload from ingest_errors order by id",
        )
        .await
    }
}
