//! Configuration, read once at cold start from the environment.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `FARMOPS_DATABASE_URL` | required | PostgreSQL URL the application connects with (role `farmops_app`). Locally a plain URL with its password; in AWS the host of RDS Proxy, the password then coming from the IAM token provider. |
//! | `FARMOPS_DB_POOL_SIZE` | `4` | connections per process (a Lambda serves one request at a time: keep it small) |
//! | `FARMOPS_DB_CONNECT_TIMEOUT_MS` | `5000` | time to open one connection |
//! | `FARMOPS_DB_MAX_CONNECTION_AGE_SECS` | `600` | a pooled connection older than this is closed instead of reused (RDS Proxy closes idle clients) |
//! | `FARMOPS_DB_IAM_AUTH` | `0` | `1`: the password of every new connection is a fresh RDS IAM auth token for the URL's host, port and user (the URL then carries no password) |
//! | `FARMOPS_DB_REGION` | `AWS_REGION` | region the IAM token is signed for (required with `FARMOPS_DB_IAM_AUTH=1`) |
//! | `FARMOPS_DB_TLS` | `proxy` with IAM auth, else `disable` | `proxy`: TLS verified (chain + host name) against Amazon Root CA 1-4; `cluster`: against the Amazon RDS CA bundle shipped in `shared/certs/`; `disable`: plain TCP (loopback development only; refused with IAM auth) |
//! | `FARMOPS_DB_CA_BUNDLE` | unset | path of a PEM file whose certificates replace the trust anchors of `proxy`/`cluster` |
//! | `FARMOPS_OWNER_DATABASE_URL` | required by migrate and the CLI | URL of the owner role (migrations); the `FARMOPS_DB_*` settings above apply to it too |
//! | `FARMOPS_DB_ADMIN_SECRET_ARN` | unset | migrate only: Secrets Manager secret (`{"username","password"}`, the cluster's master user) whose credentials replace the owner URL's; migrate then bootstraps the roles and migrates as `farmops_owner` |
//! | `FARMOPS_MIGRATE_BOOTSTRAP` | `0` | migrate only: `1` bootstraps the roles with the owner URL's own (admin) credentials before migrating |
//! | `FARMOPS_BILLING_DATABASE_URL` | required by billing | URL of the billing role (`farmops_billing`, migration 0081), with the same `FARMOPS_DB_*` settings; a variable of its own so that one local `cargo lambda watch` serves billing beside the app's functions |
//! | `FARMOPS_PAYSTACK_SECRET_ARN` | unset | billing only: Secrets Manager secret holding the Paystack secret key (the string `sk_...`, or `{"secret_key": "sk_..."}`), read once at cold start (the deployed stack) |
//! | `FARMOPS_PAYSTACK_SECRET_KEY` | required by billing without the ARN | billing only: the Paystack secret key itself (local development: `sk_test_farmops_local`); never set together with the ARN |
//!
//! Every value is checked here; a missing or malformed one is a [`ConfigError`] naming the
//! variable. Secrets are wrapped in [`Secret`] so they never print.

use std::{fmt, time::Duration};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{var} is invalid: {reason}")]
    Invalid { var: &'static str, reason: String },
}

/// A value that must never appear in logs or debug output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// How database connections are encrypted (`FARMOPS_DB_TLS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain TCP (local development).
    Disable,
    /// RDS Proxy: verified against Amazon Root CA 1-4.
    Proxy,
    /// The Aurora cluster directly: verified against the Amazon RDS CA bundle.
    Cluster,
}

impl std::str::FromStr for TlsMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "disable" => Ok(TlsMode::Disable),
            "proxy" => Ok(TlsMode::Proxy),
            "cluster" => Ok(TlsMode::Cluster),
            _ => Err("expected disable, proxy or cluster".into()),
        }
    }
}

/// RDS IAM authentication settings (`FARMOPS_DB_IAM_AUTH=1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamAuth {
    /// Region the token is signed for.
    pub region: String,
}

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub url: Secret,
    pub pool_size: usize,
    pub connect_timeout: Duration,
    pub max_connection_age: Duration,
    /// Some: every new connection authenticates with a fresh IAM token.
    pub iam_auth: Option<IamAuth>,
    pub tls: TlsMode,
    /// A PEM file replacing the default trust anchors of `tls`.
    pub ca_bundle: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub database: DatabaseConfig,
}

/// Reads variables through `lookup`, so tests pass a map instead of the process environment.
pub struct Env<F: Fn(&str) -> Option<String>>(pub F);

impl<F: Fn(&str) -> Option<String>> Env<F> {
    pub fn required(&self, var: &'static str) -> Result<String, ConfigError> {
        self.optional(var).ok_or(ConfigError::Missing(var))
    }

    pub fn optional(&self, var: &'static str) -> Option<String> {
        (self.0)(var).filter(|v| !v.trim().is_empty())
    }

    pub fn parsed<T: std::str::FromStr>(
        &self,
        var: &'static str,
        default: T,
    ) -> Result<T, ConfigError>
    where
        T::Err: fmt::Display,
    {
        match self.optional(var) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse()
                .map_err(|e: T::Err| ConfigError::Invalid {
                    var,
                    reason: format!("{raw:?}: {e}"),
                }),
        }
    }
}

impl DatabaseConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Self::from_env_with_url(env, "FARMOPS_DATABASE_URL")
    }

    /// The same settings with the URL read from `url_var` (the owner URL for migrate and the CLI).
    pub fn from_env_with_url<F: Fn(&str) -> Option<String>>(
        env: &Env<F>,
        url_var: &'static str,
    ) -> Result<Self, ConfigError> {
        let url = env.required(url_var)?;
        let parsed = url
            .parse::<tokio_postgres::Config>()
            .map_err(|e| ConfigError::Invalid {
                var: url_var,
                reason: e.to_string(),
            })?;
        let pool_size: usize = env.parsed("FARMOPS_DB_POOL_SIZE", 4)?;
        if pool_size == 0 {
            return Err(ConfigError::Invalid {
                var: "FARMOPS_DB_POOL_SIZE",
                reason: "must be at least 1".into(),
            });
        }
        let iam = match env
            .optional("FARMOPS_DB_IAM_AUTH")
            .as_deref()
            .map(str::trim)
        {
            None | Some("0") => false,
            Some("1") => true,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    var: "FARMOPS_DB_IAM_AUTH",
                    reason: format!("{other:?}: expected 0 or 1"),
                });
            }
        };
        let iam_auth = if iam {
            let region = env
                .optional("FARMOPS_DB_REGION")
                .or_else(|| env.optional("AWS_REGION"))
                .ok_or(ConfigError::Missing("AWS_REGION"))?;
            let user_and_host = parsed.get_user().is_some()
                && parsed
                    .get_hosts()
                    .iter()
                    .any(|h| matches!(h, tokio_postgres::config::Host::Tcp(_)));
            if !user_and_host {
                return Err(ConfigError::Invalid {
                    var: url_var,
                    reason: "IAM authentication needs a user and a TCP host in the URL".into(),
                });
            }
            Some(IamAuth {
                region: region.trim().to_string(),
            })
        } else {
            None
        };
        let default_tls = if iam {
            TlsMode::Proxy
        } else {
            TlsMode::Disable
        };
        let tls: TlsMode = env.parsed("FARMOPS_DB_TLS", default_tls)?;
        if iam && tls == TlsMode::Disable {
            return Err(ConfigError::Invalid {
                var: "FARMOPS_DB_TLS",
                reason: "IAM auth tokens are never sent without TLS".into(),
            });
        }
        Ok(DatabaseConfig {
            url: Secret::new(url),
            pool_size,
            connect_timeout: Duration::from_millis(
                env.parsed("FARMOPS_DB_CONNECT_TIMEOUT_MS", 5000)?,
            ),
            max_connection_age: Duration::from_secs(
                env.parsed("FARMOPS_DB_MAX_CONNECTION_AGE_SECS", 600)?,
            ),
            iam_auth,
            tls,
            ca_bundle: env.optional("FARMOPS_DB_CA_BUNDLE").map(Into::into),
        })
    }

    /// A local configuration for one URL (tests, the operator CLI).
    pub fn for_url(url: impl Into<String>) -> Self {
        DatabaseConfig {
            url: Secret::new(url),
            pool_size: 4,
            connect_timeout: Duration::from_secs(5),
            max_connection_age: Duration::from_secs(600),
            iam_auth: None,
            tls: TlsMode::Disable,
            ca_bundle: None,
        }
    }
}

/// Where the billing function's Paystack secret key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaystackSecretSource {
    /// `FARMOPS_PAYSTACK_SECRET_KEY` (local development).
    Key(Secret),
    /// `FARMOPS_PAYSTACK_SECRET_ARN`: read from Secrets Manager at cold start (AWS).
    SecretsManager { arn: String },
}

/// The billing function's settings (`functions/billing`).
#[derive(Debug, Clone)]
pub struct BillingConfig {
    /// `FARMOPS_BILLING_DATABASE_URL` and the `FARMOPS_DB_*` settings.
    pub database: DatabaseConfig,
    pub paystack_secret: PaystackSecretSource,
}

impl BillingConfig {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(lookup);
        let database = DatabaseConfig::from_env_with_url(&env, "FARMOPS_BILLING_DATABASE_URL")?;
        let key = env.optional("FARMOPS_PAYSTACK_SECRET_KEY");
        let arn = env.optional("FARMOPS_PAYSTACK_SECRET_ARN");
        let paystack_secret = match (key, arn) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid {
                    var: "FARMOPS_PAYSTACK_SECRET_KEY",
                    reason: "set it or FARMOPS_PAYSTACK_SECRET_ARN, not both".into(),
                });
            }
            (Some(key), None) => PaystackSecretSource::Key(Secret::new(key.trim())),
            (None, Some(arn)) if arn.trim().starts_with("arn:") => {
                PaystackSecretSource::SecretsManager {
                    arn: arn.trim().to_string(),
                }
            }
            (None, Some(arn)) => {
                return Err(ConfigError::Invalid {
                    var: "FARMOPS_PAYSTACK_SECRET_ARN",
                    reason: format!("{arn:?} is not an ARN"),
                });
            }
            (None, None) => return Err(ConfigError::Missing("FARMOPS_PAYSTACK_SECRET_KEY")),
        };
        Ok(BillingConfig {
            database,
            paystack_secret,
        })
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|var| std::env::var(var).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(lookup);
        Ok(Config {
            database: DatabaseConfig::from_env(&env)?,
        })
    }
}

#[cfg(test)]
mod tests;
