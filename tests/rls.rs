//! Item 6: the runner writes under row-level security. Inside the runner's
//! own write path (`Writer::write`), a row for tenant B in a transaction set
//! for tenant A is refused by the database.

mod support;

use traksense_ingest::envelope::{AckRow, Body, Reason, Rejection};
use traksense_ingest::sink::postgres::kind::SinkKind;

use support::writes::{envelope, measure, migrated_pool, writer};
use support::TestDb;

#[track_caller]
fn assert_rls_refusal(result: Result<u64, sqlx::Error>) {
    match result {
        Err(sqlx::Error::Database(e)) => {
            assert_eq!(e.code().as_deref(), Some("42501"), "{e}");
            assert!(e.message().contains("row-level security"), "{e}");
        }
        other => panic!("expected a row-level security refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_for_another_tenant_is_refused_by_the_database() {
    let db = TestDb::create("rls").await;
    let pool = migrated_pool(&db).await;

    // The connecting user is a superuser; RLS must still apply to writes.
    let is_super: bool =
        sqlx::query_scalar("select rolsuper from pg_roles where rolname = current_user")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(
        is_super,
        "the test proves RLS holds even for a superuser's runner"
    );

    let ts = writer(SinkKind::Timeseries, pool.clone());
    assert_eq!(
        ts.write(Some("tenant_a"), &[measure("tenant_a")])
            .await
            .unwrap(),
        1
    );
    assert_rls_refusal(ts.write(Some("tenant_a"), &[measure("tenant_b")]).await);

    let ack = |tenant: &str| {
        envelope(
            tenant,
            Body::Ack(AckRow {
                cmd_id: "c1".into(),
                ok: true,
                ts_exec: None,
                err: None,
                payload: "{}".into(),
            }),
        )
    };
    let acks = writer(SinkKind::AckUpsert, pool.clone());
    assert_eq!(
        acks.write(Some("tenant_a"), &[ack("tenant_a")])
            .await
            .unwrap(),
        1
    );
    assert_rls_refusal(acks.write(Some("tenant_a"), &[ack("tenant_b")]).await);

    let dead = |tenant: &str| {
        envelope(
            tenant,
            Body::Rejected(Rejection {
                reason: Reason::ParseError,
                detail: "x".into(),
            }),
        )
    };
    let dl = writer(SinkKind::DeadLetter, pool.clone());
    assert_eq!(
        dl.write(Some("tenant_a"), &[dead("tenant_a")])
            .await
            .unwrap(),
        1
    );
    assert_rls_refusal(dl.write(Some("tenant_a"), &[dead("tenant_b")]).await);

    // Only tenant A's rows exist; nothing of B slipped in.
    assert_eq!(
        db.count("select count(*) from ts_measure where tenant_id = 'tenant_b'")
            .await,
        0
    );
    assert_eq!(db.count("select count(*) from ts_measure").await, 1);
    assert_eq!(db.count("select count(*) from cmd_ack").await, 1);
    assert_eq!(db.count("select count(*) from ingest_errors").await, 1);

    // And the writer role sees only its tenant's rows.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("select set_config('role', 'ingest_writer', true), set_config('app.tenant_id', 'tenant_b', true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let visible: i64 = sqlx::query_scalar("select count(*) from ts_measure")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(visible, 0, "tenant B sees none of tenant A's rows");
    tx.rollback().await.unwrap();
    pool.close().await;
}
