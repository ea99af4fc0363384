//! Database access: the connection pool and the tenant transaction.
//!
//! * The pool is built once at cold start ([`Db::connect`]); connections open lazily. Every
//!   NEW connection asks its [`PasswordProvider`] for a password first, so a short-lived IAM
//!   token is fetched per connection (locally: the password of the URL).
//! * Tenant work runs in a [`TenantTx`]: `BEGIN` plus `set_config('app.farm_id', $farm, true)`
//!   (transaction-local: never `SET`, which would pin an RDS Proxy session), sent in the same
//!   round trip as the first statement. Row-level security keys on that setting.
//! * Every statement uses `query_typed` (the unnamed statement): no named prepared
//!   statements, so RDS Proxy never pins, and no extra prepare round trip.
//! * In AWS ([`connect_from_config`]): the password is a fresh RDS IAM token per connection
//!   ([`iam`]) and TLS is verified, chain and host name ([`tls`]).

pub mod bootstrap;
pub mod iam;
pub mod migrate;
mod tenant;
pub mod tls;

pub use tenant::TenantTx;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use deadpool::managed::{self, Metrics, Object, RecycleError, RecycleResult};
use tokio_postgres::{NoTls, types::ToSql};
use uuid::Uuid;

pub use tokio_postgres::types::Type;

use crate::{
    config::{DatabaseConfig, Secret},
    error::{Error, Result},
};

/// A bound statement parameter with its PostgreSQL type.
pub type Param<'a> = (&'a (dyn ToSql + Sync), Type);

/// Supplies the password of each new connection.
#[async_trait]
pub trait PasswordProvider: Send + Sync {
    async fn password(&self) -> Result<Option<String>, ConnectError>;
}

/// The password written in the URL (local development and tests).
pub struct UrlPassword;

#[async_trait]
impl PasswordProvider for UrlPassword {
    async fn password(&self) -> Result<Option<String>, ConnectError> {
        Ok(None)
    }
}

/// A fixed password (the migrate function's admin credentials from Secrets Manager).
pub struct StaticPassword(pub Secret);

#[async_trait]
impl PasswordProvider for StaticPassword {
    async fn password(&self) -> Result<Option<String>, ConnectError> {
        Ok(Some(self.0.expose().to_string()))
    }
}

/// How connections are encrypted.
#[derive(Clone)]
pub enum Tls {
    /// Plain TCP: loopback development only.
    Disabled,
    /// rustls, verifying chain and host name against the given roots.
    Rustls(tokio_postgres_rustls::MakeRustlsConnect),
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("could not obtain a database password: {0}")]
    Password(String),
    /// Carries the whole cause chain (e.g. the TLS verifier's `UnknownIssuer`), which the
    /// driver's own message omits.
    #[error("could not connect to the database: {}", cause_chain(.0))]
    Connect(#[from] tokio_postgres::Error),
    #[error("timed out connecting to the database after {0:?}")]
    Timeout(Duration),
}

fn cause_chain(e: &tokio_postgres::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// Creates and recycles connections for the pool.
pub struct PgManager {
    config: tokio_postgres::Config,
    password: Arc<dyn PasswordProvider>,
    tls: Tls,
    connect_timeout: Duration,
    max_age: Duration,
}

impl managed::Manager for PgManager {
    type Type = tokio_postgres::Client;
    type Error = ConnectError;

    async fn create(&self) -> Result<tokio_postgres::Client, ConnectError> {
        let mut config = self.config.clone();
        if let Some(password) = self.password.password().await? {
            config.password(password);
        }
        let connect = async {
            match &self.tls {
                Tls::Disabled => {
                    let (client, connection) = config.connect(NoTls).await?;
                    tokio::spawn(drive(connection));
                    Ok::<_, tokio_postgres::Error>(client)
                }
                Tls::Rustls(tls) => {
                    let (client, connection) = config.connect(tls.clone()).await?;
                    tokio::spawn(drive(connection));
                    Ok(client)
                }
            }
        };
        tokio::time::timeout(self.connect_timeout, connect)
            .await
            .map_err(|_| ConnectError::Timeout(self.connect_timeout))?
            .map_err(ConnectError::from)
    }

    async fn recycle(
        &self,
        client: &mut tokio_postgres::Client,
        metrics: &Metrics,
    ) -> RecycleResult<ConnectError> {
        if client.is_closed() {
            return Err(RecycleError::message("connection closed"));
        }
        if metrics.age() > self.max_age {
            return Err(RecycleError::message("connection reached its maximum age"));
        }
        Ok(())
    }
}

async fn drive<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if let Err(e) = connection.await {
        tracing::warn!(error = %e, "database connection ended with an error");
    }
}

fn parse_url(config: &DatabaseConfig) -> Result<tokio_postgres::Config> {
    config
        .url
        .expose()
        .parse()
        .map_err(|e| Error::unexpected(format!("database URL: {e}")))
}

fn tls_from_config(config: &DatabaseConfig) -> Result<Tls> {
    let bundle = match &config.ca_bundle {
        Some(path) => Some(std::fs::read(path).map_err(|e| {
            Error::unexpected(format!("reading the CA bundle {}: {e}", path.display()))
        })?),
        None => None,
    };
    tls::for_mode(&config.tls, bundle.as_deref())
}

/// The one way a function builds its pool from [`DatabaseConfig`]: TLS as configured
/// (`FARMOPS_DB_TLS`, verified chain and host name) and, with `FARMOPS_DB_IAM_AUTH=1`, a fresh
/// RDS IAM token for the URL's host, port and user as the password of every new connection.
pub async fn connect_from_config(config: &DatabaseConfig) -> Result<Db> {
    let pg = parse_url(config)?;
    let tls = tls_from_config(config)?;
    let password: Arc<dyn PasswordProvider> = match &config.iam_auth {
        None => Arc::new(UrlPassword),
        Some(iam) => {
            let sdk = iam::load_sdk_config(&iam.region).await;
            Arc::new(
                iam::IamTokenPassword::for_connection(&pg, &iam.region, sdk)
                    .map_err(|e| Error::unexpected(e.to_string()))?,
            )
        }
    };
    Db::connect_parsed(pg, config, password, tls)
}

/// Like [`connect_from_config`], but as `user` with a fixed `password` (the migrate function
/// bootstrapping the roles with the cluster's master credentials).
pub fn connect_with_credentials(
    config: &DatabaseConfig,
    user: &str,
    password: Secret,
) -> Result<Db> {
    let mut pg = parse_url(config)?;
    pg.user(user);
    let tls = tls_from_config(config)?;
    Db::connect_parsed(pg, config, Arc::new(StaticPassword(password)), tls)
}

/// The application's handle on the database: a pool, cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: managed::Pool<PgManager>,
    round_trips: Arc<AtomicU64>,
}

impl Db {
    /// Builds the pool (no connection is opened until first use).
    pub fn connect(
        config: &DatabaseConfig,
        password: Arc<dyn PasswordProvider>,
        tls: Tls,
    ) -> Result<Db> {
        let pg = parse_url(config)?;
        Db::connect_parsed(pg, config, password, tls)
    }

    fn connect_parsed(
        mut pg: tokio_postgres::Config,
        config: &DatabaseConfig,
        password: Arc<dyn PasswordProvider>,
        tls: Tls,
    ) -> Result<Db> {
        if matches!(tls, Tls::Rustls(_)) {
            // TLS or no connection: never the silent plaintext fallback of `prefer`.
            pg.ssl_mode(tokio_postgres::config::SslMode::Require);
        }
        let manager = PgManager {
            config: pg,
            password,
            tls,
            connect_timeout: config.connect_timeout,
            max_age: config.max_connection_age,
        };
        let pool = managed::Pool::builder(manager)
            .max_size(config.pool_size)
            .runtime(deadpool::Runtime::Tokio1)
            .wait_timeout(Some(config.connect_timeout * 2))
            .create_timeout(Some(config.connect_timeout))
            .build()
            .map_err(|e| Error::unexpected(format!("building the pool: {e}")))?;
        Ok(Db {
            pool,
            round_trips: Arc::new(AtomicU64::new(0)),
        })
    }

    /// A pool for a plain local URL (password in the URL, no TLS).
    pub fn for_url(url: &str) -> Result<Db> {
        Db::connect(
            &DatabaseConfig::for_url(url),
            Arc::new(UrlPassword),
            Tls::Disabled,
        )
    }

    /// A pooled connection outside any tenant (migrations, job look-ups through
    /// SECURITY DEFINER helpers). Tenant tables show it nothing.
    pub async fn client(&self) -> Result<Object<PgManager>> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Starts a transaction scoped to one farm. Nothing is sent until the first statement.
    pub async fn tenant(&self, farm_id: Uuid) -> Result<TenantTx> {
        Ok(TenantTx::new(
            self.client().await?,
            farm_id,
            self.round_trips.clone(),
        ))
    }

    /// Network round trips made by tenant transactions through this pool since it was built
    /// (pipelined statements count once): what a request costs in hops to the database.
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    pub fn close(&self) {
        self.pool.close();
    }
}

/// A connection the pool could not give: the database unreachable or refusing connections
/// (starting up, shutting down), the connect or the wait timing out, or the pool closed, is
/// [`Error::DatabaseUnavailable`] (503); a pool built wrong is [`Error::Unexpected`].
fn pool_error(e: managed::PoolError<ConnectError>) -> Error {
    let failure = Box::new(PoolFailure(e.to_string()));
    match e {
        managed::PoolError::Timeout(_)
        | managed::PoolError::Backend(_)
        | managed::PoolError::Closed => Error::DatabaseUnavailable(failure),
        managed::PoolError::NoRuntimeSpecified | managed::PoolError::PostCreateHook(_) => {
            Error::Unexpected(failure)
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("database pool: {0}")]
struct PoolFailure(String);

/// True when the error is PostgreSQL refusing something by one of its own rules
/// (constraint, trigger, privilege, row-level security): what tests of the schema look for.
pub fn sqlstate(error: &Error) -> Option<String> {
    match error {
        Error::Unexpected(source) | Error::DatabaseUnavailable(source) => source
            .downcast_ref::<tokio_postgres::Error>()
            .and_then(|e| e.code())
            .map(|c| c.code().to_string()),
        _ => None,
    }
}
