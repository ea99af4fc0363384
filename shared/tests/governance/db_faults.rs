//! Connection-level failures as the pool and the error type see them (issue 20): a database
//! that cannot be reached, and a backend killed mid-transaction (what a fast restart does to
//! every connection), are [`Error::DatabaseUnavailable`] (503); nothing half-written survives;
//! the pool discards the dead connection and its next transaction succeeds.

use std::{sync::Arc, time::Duration};

use farmops::{
    Error,
    config::DatabaseConfig,
    credits,
    db::{Db, Tls, UrlPassword},
    testing::{TestDb, admin_client},
};

const APP_NAME: &str = "db-faults";

fn pool(url: &str, size: usize) -> Db {
    let mut config = DatabaseConfig::for_url(url);
    config.pool_size = size;
    config.connect_timeout = Duration::from_secs(2);
    Db::connect(&config, Arc::new(UrlPassword), Tls::Disabled).unwrap()
}

async fn kill_all(db: &TestDb) -> u64 {
    let admin = admin_client(&db.name).await.unwrap();
    let rows = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE datname = current_database() AND application_name = $1",
            &[&APP_NAME],
        )
        .await
        .unwrap();
    rows.len() as u64
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable_not_unexpected() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let db = pool(
        &format!("postgres://farmops_app:farmops_app@127.0.0.1:{port}/none"),
        1,
    );
    let e = db
        .tenant(uuid::Uuid::new_v4())
        .await
        .err()
        .expect("no database");
    assert!(matches!(e, Error::DatabaseUnavailable(_)), "{e:?}");
    assert_eq!((e.status(), e.code()), (503, "database_unavailable"));
}

#[tokio::test]
async fn a_backend_killed_before_its_commit_loses_the_whole_transaction_and_the_pool_recovers() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("A", 0).await.unwrap();
    let owner = pool(
        &format!("{}?application_name={APP_NAME}", db.owner_url()),
        1,
    );
    // a grant written, its backend killed between the statement and the COMMIT
    let tx = owner.tenant(farm).await.unwrap();
    credits::grant_credits(&tx, 50, "test", "killed before commit")
        .await
        .unwrap();
    assert_eq!(kill_all(&db).await, 1);
    let e = tx.commit().await.expect_err("the connection is gone");
    assert!(matches!(e, Error::DatabaseUnavailable(_)), "{e:?}");
    // a statement on a killed idle connection: the same error, once
    let tx = owner.tenant(farm).await.unwrap();
    credits::grant_credits(&tx, 7, "test", "warm")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(kill_all(&db).await, 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // the pool discards the dead connection: the next transaction (same pool) succeeds
    let mut attempts = 0;
    let balance = loop {
        attempts += 1;
        let tx = owner.tenant(farm).await.unwrap();
        match credits::grant_credits(&tx, 3, "test", "after").await {
            Ok(b) => {
                tx.commit().await.unwrap();
                break b;
            }
            Err(e) if attempts == 1 => {
                assert!(matches!(e, Error::DatabaseUnavailable(_)), "{e:?}")
            }
            Err(e) => panic!("the pool did not recover: {e:?}"),
        }
    };
    assert_eq!(balance, 10, "the killed grant is wholly absent: 7 + 3");
}

/// Statements pipelined in one transaction (a chat turn's save) that come after one of them met
/// the killed connection, and the commit after it, are the same 503, not a 500 for "a failed
/// transaction": the transaction failed because its connection did.
#[tokio::test]
async fn what_follows_a_killed_statement_in_its_transaction_is_unavailable_too() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("A", 0).await.unwrap();
    let owner = pool(
        &format!("{}?application_name={APP_NAME}", db.owner_url()),
        1,
    );
    let tx = owner.tenant(farm).await.unwrap();
    tx.query("SELECT 1", &[]).await.unwrap();
    assert_eq!(kill_all(&db).await, 1);
    let e = tx.query("SELECT 2", &[]).await.expect_err("killed");
    assert!(matches!(e, Error::DatabaseUnavailable(_)), "{e:?}");
    let e = tx.query("SELECT 3", &[]).await.expect_err("failed");
    assert!(matches!(e, Error::DatabaseUnavailable(_)), "{e:?}");
    let e = tx.commit().await.expect_err("failed");
    assert!(matches!(e, Error::DatabaseUnavailable(_)), "{e:?}");
    // a refusal by the database still fails what follows as unexpected (a bug, not a fault)
    let tx = owner.tenant(farm).await.unwrap();
    tx.query("SELECT 1/0", &[])
        .await
        .expect_err("division by zero");
    let e = tx.query("SELECT 1", &[]).await.expect_err("failed");
    assert!(matches!(e, Error::Unexpected(_)), "{e:?}");
}
