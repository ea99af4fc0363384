//! Integration tests of the governance core against a real PostgreSQL (one database per test).

mod alerts;
mod budgets;
mod chain;
mod chain_page;
mod checkpoints;
mod credits;
mod db_faults;
mod decisions;
mod drafts;
mod holds;
mod invariants;
mod killed_turn;
mod knowledge;
mod lots;
mod payments;

use farmops::{Error, db::TenantTx};

/// The SQLSTATE of a database refusal carried by an [`Error`].
pub fn sqlstate(result: Result<impl std::fmt::Debug, Error>) -> String {
    match result {
        Ok(v) => panic!("expected the database to refuse, got Ok({v:?})"),
        Err(e) => {
            farmops::db::sqlstate(&e).unwrap_or_else(|| panic!("not a database refusal: {e:?}"))
        }
    }
}

/// Runs `sql` in a fresh tenant transaction of `farm` and commits.
pub async fn exec(
    db: &farmops::db::Db,
    farm: uuid::Uuid,
    sql: &str,
) -> Result<Vec<tokio_postgres::Row>, Error> {
    let tx: TenantTx = db.tenant(farm).await?;
    let rows = tx.query(sql, &[]).await?;
    tx.commit().await?;
    Ok(rows)
}
