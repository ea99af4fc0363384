//! AWS SDK clients, built once at cold start.
//!
//! The Bedrock client runs under its OWN role, assumed through STS when `BEDROCK_ROLE_ARN` is
//! set: the functions' execution role can reach the database and not Bedrock; the Bedrock
//! role can reach Bedrock and not the database. The SDK's identity cache refreshes the
//! assumed credentials before they expire.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `AWS_REGION` | SDK default chain | region of Bedrock and STS |
//! | `BEDROCK_ROLE_ARN` | unset | role to assume for Bedrock calls (unset: the process's own credentials) |
//! | `FARMOPS_BEDROCK_ENDPOINT` | unset | endpoint override (tests: a local stub speaking the Bedrock wire format) |
//! | `FARMOPS_STS_ENDPOINT` | unset | STS endpoint override (tests: a local STS) |
//! | `FARMOPS_BEDROCK_TIMEOUT_MS` | `20000` | whole operation, retries included |
//! | `FARMOPS_BEDROCK_ATTEMPT_TIMEOUT_MS` | `15000` | one attempt |
//! | `FARMOPS_BEDROCK_MAX_ATTEMPTS` | `2` | attempts per call (standard retry mode, throttling backs off) |

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, sts::AssumeRoleProvider};
use aws_smithy_types::{retry::RetryConfig, timeout::TimeoutConfig};

use crate::config::{ConfigError, Env};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BedrockSettings {
    pub region: Option<String>,
    pub role_arn: Option<String>,
    pub endpoint: Option<String>,
    pub sts_endpoint: Option<String>,
    pub operation_timeout: Duration,
    pub attempt_timeout: Duration,
    pub max_attempts: u32,
}

impl Default for BedrockSettings {
    fn default() -> Self {
        BedrockSettings {
            region: None,
            role_arn: None,
            endpoint: None,
            sts_endpoint: None,
            operation_timeout: Duration::from_secs(20),
            attempt_timeout: Duration::from_secs(15),
            max_attempts: 2,
        }
    }
}

impl BedrockSettings {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let max_attempts: u32 = env.parsed("FARMOPS_BEDROCK_MAX_ATTEMPTS", 2)?;
        if max_attempts == 0 {
            return Err(ConfigError::Invalid {
                var: "FARMOPS_BEDROCK_MAX_ATTEMPTS",
                reason: "must be at least 1".into(),
            });
        }
        Ok(BedrockSettings {
            region: env.optional("AWS_REGION"),
            role_arn: env.optional("BEDROCK_ROLE_ARN"),
            endpoint: env.optional("FARMOPS_BEDROCK_ENDPOINT"),
            sts_endpoint: env.optional("FARMOPS_STS_ENDPOINT"),
            operation_timeout: Duration::from_millis(
                env.parsed("FARMOPS_BEDROCK_TIMEOUT_MS", 20_000)?,
            ),
            attempt_timeout: Duration::from_millis(
                env.parsed("FARMOPS_BEDROCK_ATTEMPT_TIMEOUT_MS", 15_000)?,
            ),
            max_attempts,
        })
    }
}

/// The Bedrock runtime client: explicit timeouts and retries, the assumed role's credentials
/// when a role is configured.
pub async fn bedrock_client(settings: &BedrockSettings) -> aws_sdk_bedrockruntime::Client {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = &settings.region {
        loader = loader.region(Region::new(region.clone()));
    }
    let base = loader.load().await;
    bedrock_client_from(&base, settings).await
}

/// Like [`bedrock_client`], from an already loaded SDK config (tests pass one with static
/// credentials to drive the real client against a local stub).
pub async fn bedrock_client_from(
    base: &aws_config::SdkConfig,
    settings: &BedrockSettings,
) -> aws_sdk_bedrockruntime::Client {
    let mut builder = aws_sdk_bedrockruntime::config::Builder::from(base)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_timeout(settings.operation_timeout)
                .operation_attempt_timeout(settings.attempt_timeout)
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(settings.max_attempts));
    if let Some(arn) = &settings.role_arn {
        let sts_config = match &settings.sts_endpoint {
            Some(endpoint) => base.to_builder().endpoint_url(endpoint).build(),
            None => base.clone(),
        };
        let provider = AssumeRoleProvider::builder(arn)
            .session_name("farmops-bedrock")
            .configure(&sts_config)
            .build()
            .await;
        builder = builder.credentials_provider(provider);
    }
    if let Some(endpoint) = &settings.endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    aws_sdk_bedrockruntime::Client::from_conf(builder.build())
}
