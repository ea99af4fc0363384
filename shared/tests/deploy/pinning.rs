//! RDS Proxy pins a client session to one database connection when the session creates a
//! named prepared statement. The pool's statements use the unnamed statement: after real
//! domain work through a tenant transaction, the session has no prepared statement.

use farmops::{credits, db::Type, testing::TestDb};

const PREPARED: &str = "SELECT count(*) FROM pg_prepared_statements";

#[tokio::test]
async fn tenant_transactions_leave_no_named_statement_in_the_session() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let farm = db.farm("Pinning Farm", 100).await?;
    let pool = db.app_pool(1)?; // one connection: the checks below see the same session

    let tx = pool.tenant(farm).await?;
    let audit = credits::audit_ledger(&tx).await?;
    assert_eq!(audit.credit_balance, 100);
    assert!(audit.holds);
    let row = tx
        .query_one(
            "SELECT count(*) FROM farms WHERE id = $1",
            &[(&farm, Type::UUID)],
        )
        .await?;
    assert_eq!(row.get::<_, i64>(0), 1);
    let prepared: i64 = tx.query_one(PREPARED, &[]).await?.get(0);
    assert_eq!(prepared, 0, "a named statement would pin the proxy session");
    tx.commit().await?;

    // control: the check sees a named statement while one exists (what `Client::prepare`,
    // and `Client::query` for the duration of the call, create)
    let client = pool.client().await?;
    let statement = client.prepare("SELECT 1").await?;
    let prepared: i64 = client.query_typed(PREPARED, &[]).await?[0].get(0);
    assert_eq!(prepared, 1);
    drop(statement);
    Ok(())
}
