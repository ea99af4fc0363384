//! First-deploy bootstrap, run by the migrate function as the cluster's ADMIN (the Aurora
//! master user; locally a superuser), then the migrations as the owner role.
//!
//! Idempotent: every statement checks or is a no-op when repeated. What it does:
//! * creates `farmops_owner` (owns every object), `farmops_app` and `farmops_billing` (the
//!   Paystack webhook's, migration 0081; both own nothing, no BYPASSRLS) as LOGIN roles if
//!   missing, and lets the admin `SET ROLE farmops_owner`;
//! * on RDS (the `rds_iam` role exists; elsewhere skipped): `GRANT rds_iam` to all three, so
//!   they log in with IAM tokens only (the functions through RDS Proxy, end-to-end IAM);
//! * `CONNECT` on the database for the app and billing, `CREATE` on the database and schema `public` for
//!   the owner, the `vector` extension (creating it needs the admin), per-role settings
//!   (`statement_timeout`: RDS Proxy refuses connection-string options);
//! * then `SET ROLE farmops_owner`, the migrations (which grant the app its table privileges
//!   and create its row-level-security policies), `RESET ROLE`.

use tokio_postgres::Client;

use crate::{
    db::migrate,
    error::{Error, Result},
};

const BOOTSTRAP_SQL: &str = include_str!("bootstrap.sql");

/// What a migrate run did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MigrateReport {
    /// True when the roles and grants were (re)asserted as the admin first.
    pub bootstrapped: bool,
    /// Whether the connected cluster has `rds_iam` (and so the roles use IAM tokens).
    pub rds_iam: bool,
    /// Migration versions applied by this run (empty when already up to date).
    pub applied: Vec<&'static str>,
}

/// Bootstraps the roles (as the admin) and applies the migrations as `farmops_owner`.
pub async fn bootstrap_and_migrate(admin: &Client) -> Result<MigrateReport> {
    admin
        .batch_execute(BOOTSTRAP_SQL)
        .await
        .map_err(|e| Error::unexpected(format!("bootstrapping the database roles: {e}")))?;
    let rds_iam = !admin
        .query_typed("SELECT 1 FROM pg_roles WHERE rolname = 'rds_iam'", &[])
        .await?
        .is_empty();
    admin.batch_execute("SET ROLE farmops_owner").await?;
    let result = migrate::migrate(admin).await;
    let reset = admin.batch_execute("RESET ROLE").await;
    let applied = result?;
    reset?;
    Ok(MigrateReport {
        bootstrapped: true,
        rds_iam,
        applied,
    })
}

/// Applies the migrations on a connection that is already the owner role (local use).
pub async fn migrate_only(owner: &Client) -> Result<MigrateReport> {
    Ok(MigrateReport {
        bootstrapped: false,
        rds_iam: false,
        applied: migrate::migrate(owner).await?,
    })
}
