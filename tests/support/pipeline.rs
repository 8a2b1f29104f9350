//! `TestPipeline`: the shipped pipeline running in-process against a private
//! broker and a private database, with methods that read like what a user
//! does: publish, then look at the tables.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use traksense_ingest::graph::compile::compile_with_env;
use traksense_ingest::graph::run::{run, RunError, RunSummary};
use traksense_ingest::telemetry::Telemetry;

use super::{eventually, Publisher, TestBroker, TestDb};

/// The pipeline file every end-to-end test runs, exactly as shipped.
pub const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines/traksense.yaml");

/// A running pipeline and the things it talks to.
pub struct TestPipeline {
    /// The test's own database.
    pub db: TestDb,
    /// The test's own broker.
    pub broker: TestBroker,
    /// A device-side client.
    pub publisher: Publisher,
    env: HashMap<String, String>,
    shutdown: CancellationToken,
    /// The running runner's health flags and metrics.
    pub telemetry: Arc<Telemetry>,
    task: Option<JoinHandle<Result<RunSummary, RunError>>>,
}

impl TestPipeline {
    /// Starts the shipped pipeline for test `name` and waits until it is
    /// subscribed, so that nothing published afterwards can be missed.
    pub async fn spawn(name: &str) -> TestPipeline {
        Self::spawn_with(name, &[]).await
    }

    /// Like [`TestPipeline::spawn`], with extra environment variables
    /// (e.g. `INGEST_BATCH_MS`).
    pub async fn spawn_with(name: &str, vars: &[(&str, &str)]) -> TestPipeline {
        let db = TestDb::create(name).await;
        let broker = TestBroker::start();
        let mut env: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.insert("MQTT_URL".into(), broker.url());
        env.insert("DATABASE_URL".into(), db.url().to_string());
        env.insert("MQTT_CLIENT_ID".into(), format!("ingest-{name}"));
        env.insert("DB_POOL_MAX".into(), "3".into());
        env.insert("METRICS_PORT".into(), "0".into());
        let publisher = Publisher::connect(&broker.url(), &format!("device-{name}")).await;
        let mut pipeline = TestPipeline {
            db,
            broker,
            publisher,
            env,
            shutdown: CancellationToken::new(),
            telemetry: Telemetry::new().expect("metrics registry"),
            task: None,
        };
        pipeline.start_runner().await;
        pipeline
    }

    /// Starts the runner (again, after [`TestPipeline::stop_runner`]) with
    /// the same client id, and waits until it is subscribed.
    pub async fn start_runner(&mut self) {
        assert!(self.task.is_none(), "the runner is already running");
        let env = &self.env;
        let plan = compile_with_env(Path::new(SHIPPED), &|k| env.get(k).cloned())
            .unwrap_or_else(|e| panic!("shipped pipeline must compile:\n{e}"));
        self.shutdown = CancellationToken::new();
        self.telemetry = Telemetry::new().expect("metrics registry");
        self.task = Some(tokio::spawn(run(
            plan,
            self.shutdown.clone(),
            self.telemetry.clone(),
        )));
        let health = self.telemetry.health.clone();
        eventually("the runner to subscribe", Duration::from_secs(30), || {
            let health = health.clone();
            async move {
                if health.ready() {
                    Ok(())
                } else {
                    Err("not ready")
                }
            }
        })
        .await;
    }

    /// Stops the runner gracefully (the broker, database and publisher stay)
    /// and returns its totals.
    pub async fn stop_runner(&mut self) -> RunSummary {
        self.shutdown.cancel();
        let task = self.task.take().expect("the runner is running");
        tokio::time::timeout(Duration::from_secs(40), task)
            .await
            .expect("the runner stops within its drain timeout")
            .expect("the runner task does not panic")
            .expect("the runner stops without error")
    }

    /// Publishes one message at QoS 1 (returns once the broker has it).
    pub async fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.publisher.publish(topic, payload).await;
    }

    /// Waits until `sql` (a `count(*)`) reaches `n`, then returns it.
    pub async fn wait_count(&self, sql: &str, n: i64) -> i64 {
        eventually(
            &format!("{n} from `{sql}`"),
            Duration::from_secs(15),
            || async {
                let got = self.db.count(sql).await;
                if got == n {
                    Ok(got)
                } else {
                    Err(got)
                }
            },
        )
        .await
    }

    /// Stops the runner gracefully and returns its totals; the broker and
    /// database go when the value drops.
    pub async fn stop(mut self) -> RunSummary {
        self.stop_runner().await
    }

    /// Whether the runner is still running (it must survive bad input).
    pub fn is_running(&self) -> bool {
        self.task.as_ref().is_some_and(|t| !t.is_finished())
    }
}

impl Drop for TestPipeline {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
