//! Configuration, read once at cold start from the environment.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `FARMOPS_DATABASE_URL` | required | PostgreSQL URL the application connects with (role `farmops_app`). Locally a plain URL with its password; in AWS the host of RDS Proxy, the password then coming from the IAM token provider. |
//! | `FARMOPS_DB_POOL_SIZE` | `4` | connections per process (a Lambda serves one request at a time: keep it small) |
//! | `FARMOPS_DB_CONNECT_TIMEOUT_MS` | `5000` | time to open one connection |
//! | `FARMOPS_DB_MAX_CONNECTION_AGE_SECS` | `600` | a pooled connection older than this is closed instead of reused (RDS Proxy closes idle clients) |
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

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub url: Secret,
    pub pool_size: usize,
    pub connect_timeout: Duration,
    pub max_connection_age: Duration,
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
        let url = env.required("FARMOPS_DATABASE_URL")?;
        url.parse::<tokio_postgres::Config>()
            .map_err(|e| ConfigError::Invalid {
                var: "FARMOPS_DATABASE_URL",
                reason: e.to_string(),
            })?;
        let pool_size: usize = env.parsed("FARMOPS_DB_POOL_SIZE", 4)?;
        if pool_size == 0 {
            return Err(ConfigError::Invalid {
                var: "FARMOPS_DB_POOL_SIZE",
                reason: "must be at least 1".into(),
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
        })
    }

    /// A local configuration for one URL (tests, the operator CLI).
    pub fn for_url(url: impl Into<String>) -> Self {
        DatabaseConfig {
            url: Secret::new(url),
            pool_size: 4,
            connect_timeout: Duration::from_secs(5),
            max_connection_age: Duration::from_secs(600),
        }
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
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn reads_defaults_and_overrides() {
        let c = config(&[(
            "FARMOPS_DATABASE_URL",
            "postgres://app:pw@127.0.0.1:5432/farmops",
        )])
        .unwrap();
        assert_eq!(c.database.pool_size, 4);
        assert_eq!(c.database.connect_timeout, Duration::from_secs(5));
        let c = config(&[
            ("FARMOPS_DATABASE_URL", "postgres://app@h/db"),
            ("FARMOPS_DB_POOL_SIZE", "2"),
            ("FARMOPS_DB_CONNECT_TIMEOUT_MS", "250"),
        ])
        .unwrap();
        assert_eq!(c.database.pool_size, 2);
        assert_eq!(c.database.connect_timeout, Duration::from_millis(250));
    }

    #[test]
    fn missing_and_invalid_values_name_the_variable() {
        assert_eq!(
            config(&[]).unwrap_err(),
            ConfigError::Missing("FARMOPS_DATABASE_URL")
        );
        let err = config(&[
            ("FARMOPS_DATABASE_URL", "postgres://h/db"),
            ("FARMOPS_DB_POOL_SIZE", "many"),
        ])
        .unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Invalid {
                    var: "FARMOPS_DB_POOL_SIZE",
                    ..
                }
            ),
            "{err}"
        );
        let err = config(&[
            ("FARMOPS_DATABASE_URL", "postgres://h/db"),
            ("FARMOPS_DB_POOL_SIZE", "0"),
        ])
        .unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                var: "FARMOPS_DB_POOL_SIZE",
                ..
            }
        ));
        let err = config(&[("FARMOPS_DATABASE_URL", "postgres://h:notaport/db")]).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                var: "FARMOPS_DATABASE_URL",
                ..
            }
        ));
    }

    #[test]
    fn secrets_never_print() {
        let c = config(&[("FARMOPS_DATABASE_URL", "postgres://app:hunter2@h/db")]).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
