//! RDS IAM authentication: the password of every NEW connection is a fresh auth token for the
//! RDS Proxy endpoint, signed locally (SigV4, no network call) with the function's own
//! credentials. A token is valid for at most 15 minutes and is only needed at connect time:
//! it is generated per connection and never stored, so no connection ever presents a stale one.
//!
//! The signing host, port and user are the ones the connection uses (from the database URL),
//! and the region is set explicitly: the SDK's generator silently falls back to `us-east-1`.

use async_trait::async_trait;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_rds::auth_token::{AuthTokenGenerator, Config as TokenConfig};

use super::{ConnectError, PasswordProvider};

/// Generates an IAM auth token for each new connection.
pub struct IamTokenPassword {
    generator: AuthTokenGenerator,
    sdk: SdkConfig,
}

impl std::fmt::Debug for IamTokenPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IamTokenPassword").finish_non_exhaustive()
    }
}

impl IamTokenPassword {
    /// `sdk` supplies the credentials and the clock (tests pass fixed ones).
    pub fn new(
        host: &str,
        port: u16,
        user: &str,
        region: &str,
        sdk: SdkConfig,
    ) -> Result<Self, ConnectError> {
        let config = TokenConfig::builder()
            .hostname(host)
            .port(u64::from(port))
            .username(user)
            .region(Region::new(region.to_string()))
            .expires_in(900)
            .build()
            .map_err(|e| ConnectError::Password(format!("IAM token settings: {e}")))?;
        Ok(IamTokenPassword {
            generator: AuthTokenGenerator::new(config),
            sdk,
        })
    }

    /// For the host, port and user a connection uses (its parsed URL): the token must be
    /// signed for exactly the endpoint the client connects to.
    pub fn for_connection(
        pg: &tokio_postgres::Config,
        region: &str,
        sdk: SdkConfig,
    ) -> Result<Self, ConnectError> {
        let host = pg
            .get_hosts()
            .iter()
            .find_map(|h| match h {
                tokio_postgres::config::Host::Tcp(h) => Some(h.clone()),
                #[allow(unreachable_patterns)]
                _ => None,
            })
            .ok_or_else(|| ConnectError::Password("IAM authentication needs a TCP host".into()))?;
        let port = pg.get_ports().first().copied().unwrap_or(5432);
        let user = pg
            .get_user()
            .ok_or_else(|| ConnectError::Password("IAM authentication needs a user".into()))?;
        Self::new(&host, port, user, region, sdk)
    }

    /// A token valid for 15 minutes from now.
    pub async fn token(&self) -> Result<String, ConnectError> {
        self.generator
            .auth_token(&self.sdk)
            .await
            .map(|t| t.as_str().to_string())
            .map_err(|e| ConnectError::Password(format!("RDS IAM auth token: {e}")))
    }
}

/// The process's default credentials chain (the Lambda execution role) and clock.
pub async fn load_sdk_config(region: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .load()
        .await
}

#[async_trait]
impl PasswordProvider for IamTokenPassword {
    async fn password(&self) -> Result<Option<String>, ConnectError> {
        self.token().await.map(Some)
    }
}
