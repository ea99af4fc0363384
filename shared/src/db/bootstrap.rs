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

const BOOTSTRAP_SQL: &str = r#"
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'farmops_owner') THEN
    CREATE ROLE farmops_owner LOGIN NOSUPERUSER NOBYPASSRLS;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'farmops_app') THEN
    CREATE ROLE farmops_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'farmops_billing') THEN
    CREATE ROLE farmops_billing LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
  END IF;
  -- migrations 0001 and 0081 create farmops_app and farmops_billing NOLOGIN when they are
  -- missing: the functions log in as them
  ALTER ROLE farmops_app LOGIN;
  ALTER ROLE farmops_billing LOGIN;
  IF NOT pg_has_role(current_user, 'farmops_owner', 'MEMBER') THEN
    EXECUTE format('GRANT farmops_owner TO %I', current_user);
  END IF;
  -- RDS only: IAM authentication for both roles (guarded: no such role elsewhere)
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rds_iam') THEN
    GRANT rds_iam TO farmops_app;
    GRANT rds_iam TO farmops_billing;
    GRANT rds_iam TO farmops_owner;
  END IF;
  EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO farmops_app', current_database());
  EXECUTE format('GRANT CONNECT ON DATABASE %I TO farmops_billing', current_database());
  EXECUTE format('GRANT CONNECT, CREATE ON DATABASE %I TO farmops_owner', current_database());
END $$;
GRANT USAGE, CREATE ON SCHEMA public TO farmops_owner;
ALTER ROLE farmops_app SET statement_timeout = '15s';
ALTER ROLE farmops_app SET idle_in_transaction_session_timeout = '30s';
ALTER ROLE farmops_billing SET statement_timeout = '15s';
ALTER ROLE farmops_billing SET idle_in_transaction_session_timeout = '30s';
CREATE EXTENSION IF NOT EXISTS vector;
"#;

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
