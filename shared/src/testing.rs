//! Test support (feature `testing`): each test gets its own database, cloned from a template
//! that was migrated once per migration set, and dropped when the test ends.
//!
//! | variable | default |
//! |---|---|
//! | `FARMOPS_TEST_ADMIN_URL` | `postgres://postgres:postgres@127.0.0.1:55432/postgres` (a superuser: creates databases and the `vector` extension) |
//! | `FARMOPS_TEST_HOST` / `FARMOPS_TEST_PORT` | `127.0.0.1` / `55432` |
//! | `FARMOPS_TEST_VERBOSE` | unset: tests print nothing; set (to anything but `0`): [`test_note!`](crate::test_note) prints the timings and counts tests measure |
//!
//! The roles `farmops_owner`, `farmops_app` and `farmops_billing` come from
//! `scripts/setup-postgres.sh`.

use anyhow::{Context, Result};
use tokio_postgres::NoTls;
use uuid::Uuid;

use crate::{credits, db::Db, db::migrate};

pub const OWNER_PASSWORD: &str = "farmops_owner";
pub const APP_PASSWORD: &str = "farmops_app";
pub const BILLING_PASSWORD: &str = "farmops_billing";

/// Whether `FARMOPS_TEST_VERBOSE` asks tests to print what they measured.
pub fn verbose() -> bool {
    std::env::var_os("FARMOPS_TEST_VERBOSE").is_some_and(|v| v != "0")
}

/// `eprintln!` when `FARMOPS_TEST_VERBOSE` is set ([`verbose`]); otherwise nothing: tests
/// print nothing unless asked.
#[macro_export]
macro_rules! test_note {
    ($($arg:tt)*) => {
        if $crate::testing::verbose() {
            eprintln!($($arg)*);
        }
    };
}

fn admin_url() -> String {
    std::env::var("FARMOPS_TEST_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:55432/postgres".into())
}

fn host_port() -> (String, String) {
    (
        std::env::var("FARMOPS_TEST_HOST").unwrap_or_else(|_| "127.0.0.1".into()),
        std::env::var("FARMOPS_TEST_PORT").unwrap_or_else(|_| "55432".into()),
    )
}

/// `postgres://user:password@host:port/database`.
pub fn url(user: &str, password: &str, database: &str) -> String {
    let (host, port) = host_port();
    format!("postgres://{user}:{password}@{host}:{port}/{database}")
}

async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("connecting to {}", redact(url)))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(a), Some(b)) if a < b => format!("{}://***{}", &url[..a], &url[b..]),
        _ => url.to_string(),
    }
}

/// Creates (once per migration set, under an advisory lock) and returns the template name.
pub async fn ensure_template() -> Result<String> {
    let name = format!("farmops_tpl_{}", migrate::fingerprint());
    let admin = connect(&admin_url()).await?;
    admin
        .batch_execute("SELECT pg_advisory_lock(727274)")
        .await?;
    let result = async {
        let exists = admin
            .query_typed(
                "SELECT 1 FROM pg_database WHERE datname = $1",
                &[(&name, tokio_postgres::types::Type::TEXT)],
            )
            .await?;
        if exists.is_empty() {
            let building = format!("{name}_building");
            admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
                .await?;
            admin
                .batch_execute(&format!("CREATE DATABASE {building} OWNER farmops_owner"))
                .await?;
            {
                let su = connect(&admin_url_for(&building)).await?;
                su.batch_execute("CREATE EXTENSION IF NOT EXISTS vector")
                    .await?;
                let owner = connect(&url("farmops_owner", OWNER_PASSWORD, &building)).await?;
                migrate::migrate(&owner)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}: {:?}", std::error::Error::source(&e)))?;
            }
            admin
                .batch_execute(&format!("ALTER DATABASE {building} RENAME TO {name}"))
                .await?;
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    admin
        .batch_execute("SELECT pg_advisory_unlock(727274)")
        .await?;
    result?;
    Ok(name)
}

/// A migrated database named `name` that outlives this process (a benchmark's cached data
/// set), cloned from the template unless it exists. Returns whether it was created now.
pub async fn ensure_database(name: &str) -> Result<bool> {
    let template = ensure_template().await?;
    let admin = connect(&admin_url()).await?;
    let exists = admin
        .query_typed(
            "SELECT 1 FROM pg_database WHERE datname = $1",
            &[(&name, tokio_postgres::types::Type::TEXT)],
        )
        .await?;
    if !exists.is_empty() {
        return Ok(false);
    }
    admin
        .batch_execute(&format!(
            "CREATE DATABASE {name} TEMPLATE {template} OWNER farmops_owner"
        ))
        .await?;
    Ok(true)
}

/// An empty database named `name` (the `vector` extension, owned by the owner role), not
/// migrated: for tests that migrate it step by step. Drop it with [`drop_database`].
pub async fn empty_database(name: &str) -> Result<()> {
    let admin = connect(&admin_url()).await?;
    admin
        .batch_execute(&format!("CREATE DATABASE {name} OWNER farmops_owner"))
        .await?;
    admin_client(name)
        .await?
        .batch_execute("CREATE EXTENSION IF NOT EXISTS vector")
        .await?;
    Ok(())
}

/// Drops a database made by [`ensure_database`] (connections and all).
pub async fn drop_database(name: &str) -> Result<()> {
    let admin = connect(&admin_url()).await?;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await?;
    Ok(())
}

/// A superuser connection to `database` (bulk loads that bypass row-level security).
pub async fn admin_client(database: &str) -> Result<tokio_postgres::Client> {
    connect(&admin_url_for(database)).await
}

fn admin_url_for(database: &str) -> String {
    let admin = admin_url();
    match admin.rfind('/') {
        Some(i) => format!("{}/{database}", &admin[..i]),
        None => admin,
    }
}

/// SQL for a seeded history written straight into the ledger (as the owner, in bulk): takes
/// `credits` from the farm's one credit lot with a single move, so the balance still equals
/// the lots at commit (migration 0080). The farm must have exactly one open lot.
pub fn seeded_lot_debit(farm: Uuid, credits: i64) -> String {
    format!(
        "WITH lot AS (UPDATE credit_lots SET remaining = remaining - {credits}
                       WHERE farm_id = '{farm}' AND closed_at IS NULL RETURNING id)
         INSERT INTO credit_lot_moves (farm_id, lot_id, kind, delta)
           SELECT '{farm}', id, 'adjust', -{credits} FROM lot;"
    )
}

/// An isolated, migrated database, dropped (connections and all) when this value drops.
pub struct TestDb {
    pub name: String,
    /// Pool connected as the application role (row-level security applies).
    pub app: Db,
    /// Pool connected as the owner (migrations, operator work).
    pub owner: Db,
}

impl TestDb {
    pub async fn new() -> Result<TestDb> {
        let template = ensure_template().await?;
        let name = format!("farmops_test_{}", Uuid::new_v4().simple());
        let admin = connect(&admin_url()).await?;
        admin
            .batch_execute(&format!(
                "CREATE DATABASE {name} TEMPLATE {template} OWNER farmops_owner"
            ))
            .await?;
        let app = Db::for_url(&self::url("farmops_app", APP_PASSWORD, &name))?;
        let owner = Db::for_url(&self::url("farmops_owner", OWNER_PASSWORD, &name))?;
        Ok(TestDb { name, app, owner })
    }

    pub fn app_url(&self) -> String {
        url("farmops_app", APP_PASSWORD, &self.name)
    }

    pub fn owner_url(&self) -> String {
        url("farmops_owner", OWNER_PASSWORD, &self.name)
    }

    pub fn billing_url(&self) -> String {
        url("farmops_billing", BILLING_PASSWORD, &self.name)
    }

    /// A pool of the billing role (the Paystack webhook's, migration 0081) with room for
    /// `size` concurrent connections.
    pub fn billing_pool(&self, size: usize) -> Result<Db> {
        self.pool_of(self.billing_url(), size)
    }

    /// A plain connection as the billing role.
    pub async fn billing_client(&self) -> Result<tokio_postgres::Client> {
        connect(&self.billing_url()).await
    }

    /// Creates or replaces a credit pack (as the owner).
    pub async fn pack(&self, name: &str, credits: i64, price_kobo: i64) -> Result<()> {
        crate::payments::set_pack(
            &self.owner,
            &crate::payments::CreditPack {
                name: name.into(),
                credits,
                price_kobo,
            },
        )
        .await?;
        Ok(())
    }

    /// A pool of the application role with room for `size` concurrent connections.
    pub fn app_pool(&self, size: usize) -> Result<Db> {
        self.pool_of(self.app_url(), size)
    }

    /// A pool of the owner role with room for `size` concurrent connections.
    pub fn owner_pool(&self, size: usize) -> Result<Db> {
        self.pool_of(self.owner_url(), size)
    }

    fn pool_of(&self, url: String, size: usize) -> Result<Db> {
        let mut config = crate::config::DatabaseConfig::for_url(url);
        config.pool_size = size;
        // many scram handshakes at once on a busy 2-core machine take a while
        config.connect_timeout = std::time::Duration::from_secs(30);
        Ok(Db::connect(
            &config,
            std::sync::Arc::new(crate::db::UrlPassword),
            crate::db::Tls::Disabled,
        )?)
    }

    /// A plain connection as the owner.
    pub async fn owner_client(&self) -> Result<tokio_postgres::Client> {
        connect(&self.owner_url()).await
    }

    /// A plain connection as the application role (no tenant set).
    pub async fn app_client(&self) -> Result<tokio_postgres::Client> {
        connect(&self.app_url()).await
    }

    /// Creates a farm (as the owner) with `credits` granted and returns its id.
    pub async fn farm(&self, name: &str, credits: i64) -> Result<Uuid> {
        let id = Uuid::new_v4();
        let owner = self.owner_client().await?;
        owner
            .query_typed(
                "INSERT INTO farms (id, name) VALUES ($1, $2)",
                &[
                    (&id, tokio_postgres::types::Type::UUID),
                    (&name, tokio_postgres::types::Type::TEXT),
                ],
            )
            .await?;
        if credits > 0 {
            let tx = self.owner.tenant(id).await?;
            credits::grant_credits(&tx, credits, "test", "test grant").await?;
            tx.commit().await?;
        }
        Ok(id)
    }

    /// Adds `user_id` to a farm with `role` (as the owner).
    pub async fn member(&self, farm_id: Uuid, user_id: &str, role: &str) -> Result<()> {
        let owner = self.owner_client().await?;
        owner
            .query_typed(
                "INSERT INTO farm_members (farm_id, user_id, role) VALUES ($1, $2, $3)",
                &[
                    (&farm_id, tokio_postgres::types::Type::UUID),
                    (&user_id, tokio_postgres::types::Type::TEXT),
                    (&role, tokio_postgres::types::Type::TEXT),
                ],
            )
            .await?;
        Ok(())
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        self.app.close();
        self.owner.close();
        let name = self.name.clone();
        // Drop on a thread of its own: this may run inside or outside a runtime.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let admin = connect(&admin_url()).await.ok()?;
                admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .ok()
            })
        })
        .join();
    }
}

pub mod converse;
pub mod eventbridge;
pub mod events;
pub mod faults;
pub mod kms;
pub mod retrieval;
pub mod stub;

pub use events::eventbridge_scheduled_event;
