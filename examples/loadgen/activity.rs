//! How many of the runner's statements PostgreSQL runs at once: samples
//! `pg_stat_activity` of the runner's database every [`SAMPLE`] from the
//! first publish until every point is committed, and reports the share of
//! samples with 0, 1 and 2 or more active client statements.
//!
//! Why: on two cores, one active statement at a time means one backend
//! works while the other core waits; a write path that overlaps its
//! transactions shows up here as samples with 2 or more.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::{Connection, PgConnection};
use tokio::task::JoinHandle;
use tokio::time::{sleep, Instant};

use crate::report::Report;

/// How often `pg_stat_activity` is read.
const SAMPLE: Duration = Duration::from_millis(20);

/// Active client statements in the database, other than this one.
const QUERY: &str = "SELECT count(*) FROM pg_stat_activity \
    WHERE datname = current_database() AND state = 'active' \
    AND backend_type = 'client backend' AND pid <> pg_backend_pid()";

/// A running sampler.
pub struct Activity {
    /// Set to stop sampling.
    stop: Arc<AtomicBool>,
    /// Returns how many samples saw 0, 1, 2, 3 or more active statements.
    task: JoinHandle<[u64; 4]>,
}

impl Activity {
    /// Connects and starts sampling, until [`Activity::finish`] or `deadline`.
    pub async fn start(database_url: &str, deadline: Instant) -> Result<Activity, String> {
        let mut conn = PgConnection::connect(database_url)
            .await
            .map_err(|e| format!("cannot connect to the database: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let task = tokio::spawn(async move {
            let mut seen = [0u64; 4];
            while !stopping.load(Ordering::Acquire) && Instant::now() < deadline {
                if let Ok(n) = sqlx::query_scalar::<_, i64>(QUERY)
                    .fetch_one(&mut conn)
                    .await
                {
                    seen[n.clamp(0, 3) as usize] += 1;
                }
                sleep(SAMPLE).await;
            }
            let _ = conn.close().await;
            seen
        });
        Ok(Activity { stop, task })
    }

    /// Stops sampling and records the shares (`pg_active_*`).
    pub async fn finish(self, report: &mut Report) {
        self.stop.store(true, Ordering::Release);
        let Ok(seen) = self.task.await else {
            return;
        };
        let samples: u64 = seen.iter().sum();
        report.set("pg_active_samples", samples);
        if samples == 0 {
            return;
        }
        let share = |n: u64| format!("{:.0}", n as f64 * 100.0 / samples as f64);
        report.set("pg_active_0_pct", share(seen[0]));
        report.set("pg_active_1_pct", share(seen[1]));
        report.set("pg_active_2plus_pct", share(seen[2] + seen[3]));
        let mean = (seen[1] + 2 * seen[2] + 3 * seen[3]) as f64 / samples as f64;
        report.set("pg_active_mean", format!("{mean:.2}"));
    }
}
