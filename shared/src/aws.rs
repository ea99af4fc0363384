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

/// The AWS side of one cold start, built on first use and then shared: the SDK configuration
/// (the process's credentials chain, in `AWS_REGION` when set) and the Bedrock runtime client
/// ([`bedrock_client_from`] with [`BedrockSettings::from_env`]) that the chat model
/// ([`crate::model::from_env`]) and the embedder ([`crate::embed::embedder_from_env`]) both
/// call through: one configuration load, one connection pool, one assumed-role session. The
/// EventBridge alert bus takes the same configuration. Nothing is loaded when nothing asks
/// (the offline model and embedder). Clones share the same cells.
#[derive(Clone, Default)]
pub struct ColdStartAws {
    sdk: std::sync::Arc<tokio::sync::OnceCell<aws_config::SdkConfig>>,
    bedrock: std::sync::Arc<tokio::sync::OnceCell<aws_sdk_bedrockruntime::Client>>,
}

impl ColdStartAws {
    /// Over an SDK configuration already loaded (tests: fixed credentials and a stub's
    /// endpoint); nothing else is loaded for it.
    pub fn with_sdk_config(sdk: aws_config::SdkConfig) -> Self {
        ColdStartAws {
            sdk: std::sync::Arc::new(tokio::sync::OnceCell::new_with(Some(sdk))),
            bedrock: Default::default(),
        }
    }

    /// The SDK configuration: the default credentials chain, in `AWS_REGION` when `env` sets it
    /// (else the SDK's default region chain). Loaded once.
    pub async fn sdk_config<F: Fn(&str) -> Option<String>>(
        &self,
        env: &Env<F>,
    ) -> &aws_config::SdkConfig {
        self.sdk
            .get_or_init(|| async { sdk_config(env.optional("AWS_REGION").as_deref()).await })
            .await
    }

    /// The Bedrock runtime client for [`BedrockSettings::from_env`] (a setting's error stops
    /// the cold start naming its variable). Built once.
    pub async fn bedrock<F: Fn(&str) -> Option<String>>(
        &self,
        env: &Env<F>,
    ) -> crate::Result<aws_sdk_bedrockruntime::Client> {
        let client = self
            .bedrock
            .get_or_try_init(|| async {
                let settings = BedrockSettings::from_env(env)
                    .map_err(|e| crate::Error::unexpected(e.to_string()))?;
                let base = self.sdk_config(env).await;
                Ok::<_, crate::Error>(bedrock_client_from(&settings, base).await)
            })
            .await?;
        Ok(client.clone())
    }
}

/// The process's default credentials chain, in `region` when one is given (else the SDK's
/// default region chain).
async fn sdk_config(region: Option<&str>) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_string()));
    }
    loader.load().await
}

/// [`bedrock_client`] over an already loaded base configuration (its credentials are the ones
/// that assume the Bedrock role; tests pass fixed ones).
pub async fn bedrock_client_from(
    settings: &BedrockSettings,
    base: &aws_config::SdkConfig,
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
            None => (*base).clone(),
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

/// Where the process runs, read from the variables the Lambda runtimes set: the one
/// "inside Lambda" check (logging and the dev identity header both ask it).
///
/// | host | how it is recognised | who |
/// |---|---|---|
/// | [`LambdaHost::Aws`] | `LAMBDA_TASK_ROOT` (`/var/task`, every runtime including `provided.al2023`) or `AWS_EXECUTION_ENV` set | the real Lambda service only |
/// | [`LambdaHost::Emulated`] | `AWS_LAMBDA_FUNCTION_NAME` set, neither of the above | `cargo lambda watch` (local dev, cargo-lambda 1.9 sets the `AWS_LAMBDA_*` variables but not those two) and the bench's cold-start runner |
/// | [`LambdaHost::Local`] | none of them | `cargo run`, tests, the CLI |
///
/// Two questions, two answers: "is a Lambda runtime driving us" ([`LambdaHost::is_lambda_runtime`],
/// real or emulated: JSON log lines, as CloudWatch wants and as `cargo lambda watch` has always
/// printed) and "is this the real AWS service" ([`LambdaHost::is_aws`]: the dev identity header
/// is refused there, so it must not count `cargo lambda watch`, where local development uses
/// it). Blank values count as unset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LambdaHost {
    Aws,
    Emulated,
    Local,
}

impl LambdaHost {
    /// The host the process environment names.
    pub fn from_env() -> LambdaHost {
        LambdaHost::from_lookup(|k| std::env::var(k).ok())
    }

    /// The host `lookup` (a variable's value) names; see [`LambdaHost`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> LambdaHost {
        let set = |k: &str| lookup(k).is_some_and(|v| !v.trim().is_empty());
        if set("LAMBDA_TASK_ROOT") || set("AWS_EXECUTION_ENV") {
            LambdaHost::Aws
        } else if set("AWS_LAMBDA_FUNCTION_NAME") {
            LambdaHost::Emulated
        } else {
            LambdaHost::Local
        }
    }

    /// The real AWS Lambda service.
    pub fn is_aws(self) -> bool {
        self == LambdaHost::Aws
    }

    /// A Lambda runtime API drives the process: AWS or `cargo lambda watch`.
    pub fn is_lambda_runtime(self) -> bool {
        self != LambdaHost::Local
    }
}

/// Bedrock error codes that mean "try again later" (the service is throttling, busy or still
/// loading the model).
pub fn is_unavailable_code(code: &str) -> bool {
    matches!(
        code,
        "ThrottlingException"
            | "ServiceUnavailableException"
            | "ModelNotReadyException"
            | "ModelTimeoutException"
    )
}

/// The one classifier of a Bedrock runtime SDK failure (Converse for the chat model,
/// InvokeModel for the embedder): a timeout, an unreachable endpoint or an
/// [unavailable code](is_unavailable_code) is [`crate::Error::ModelUnavailable`] (503: retry);
/// any other service error (validation, access denied, ...), an unreadable response or a
/// request that could not be built is [`crate::Error::ModelFailed`] (502).
pub fn classify_bedrock_error<E, R>(
    e: aws_sdk_bedrockruntime::error::SdkError<E, R>,
) -> crate::Error
where
    E: aws_sdk_bedrockruntime::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use crate::Error;
    use aws_sdk_bedrockruntime::error::SdkError;
    match e {
        SdkError::TimeoutError(_) => Error::ModelUnavailable("the model timed out".into()),
        SdkError::DispatchFailure(d) => {
            if d.is_timeout() {
                Error::ModelUnavailable("the model timed out".into())
            } else {
                Error::ModelUnavailable(format!("could not reach the model: {d:?}"))
            }
        }
        SdkError::ServiceError(se) => {
            let err = se.into_err();
            let message = err.to_string();
            match err.code().unwrap_or("error") {
                "ThrottlingException" => Error::ModelUnavailable(format!("throttled: {message}")),
                code if is_unavailable_code(code) => Error::ModelUnavailable(message),
                code => Error::ModelFailed(format!("{code}: {message}")),
            }
        }
        SdkError::ResponseError(r) => Error::ModelFailed(format!("unreadable response: {r:?}")),
        other => Error::ModelFailed(format!("{other}")),
    }
}

/// Credentials read from a Secrets Manager secret holding `{"username", "password"}` (the
/// Aurora master user's secret, managed by RDS). Migrate only: feature `admin-secret`.
#[cfg(feature = "admin-secret")]
pub async fn admin_credentials(
    secret_arn: &str,
    region: Option<&str>,
) -> crate::Result<(String, crate::config::Secret)> {
    admin_credentials_from(&sdk_config(region).await, secret_arn).await
}

/// [`admin_credentials`] with an already loaded configuration (tests: fixed credentials and a
/// local Secrets Manager endpoint).
#[cfg(feature = "admin-secret")]
pub async fn admin_credentials_from(
    sdk: &aws_config::SdkConfig,
    secret_arn: &str,
) -> crate::Result<(String, crate::config::Secret)> {
    parse_admin_secret(&secret_string(sdk, secret_arn, "admin secret").await?)
}

/// The `SecretString` of a Secrets Manager secret, read once at cold start; `what` names the
/// secret in errors (which never hold its value).
#[cfg(any(feature = "admin-secret", feature = "paystack-secret"))]
async fn secret_string(
    sdk: &aws_config::SdkConfig,
    secret_arn: &str,
    what: &str,
) -> crate::Result<String> {
    let value = aws_sdk_secretsmanager::Client::new(sdk)
        .get_secret_value()
        .secret_id(secret_arn)
        .send()
        .await
        .map_err(|e| {
            crate::Error::unexpected(format!(
                "reading the {what}: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
            ))
        })?;
    value
        .secret_string()
        .map(str::to_string)
        .ok_or_else(|| crate::Error::unexpected(format!("the {what} has no SecretString")))
}

/// [`paystack_secret_from`] with the default AWS configuration (the function's role).
#[cfg(feature = "paystack-secret")]
pub async fn paystack_secret(secret_arn: &str) -> crate::Result<crate::config::Secret> {
    paystack_secret_from(&sdk_config(None).await, secret_arn).await
}

/// The Paystack secret key held in a Secrets Manager secret (billing only: feature
/// `paystack-secret`), read once at cold start: the string itself, or `{"secret_key": ..}`
/// (the console's key/value form).
#[cfg(feature = "paystack-secret")]
pub async fn paystack_secret_from(
    sdk: &aws_config::SdkConfig,
    secret_arn: &str,
) -> crate::Result<crate::config::Secret> {
    parse_paystack_secret(&secret_string(sdk, secret_arn, "Paystack secret").await?)
}

/// The key out of the secret's text (see [`paystack_secret_from`]); never echoes it.
pub fn parse_paystack_secret(text: &str) -> crate::Result<crate::config::Secret> {
    #[derive(serde::Deserialize)]
    struct Shape {
        secret_key: String,
    }
    let text = text.trim();
    let key = if text.starts_with('{') {
        serde_json::from_str::<Shape>(text)
            .map_err(|_| {
                crate::Error::unexpected("the Paystack secret is JSON without a \"secret_key\"")
            })?
            .secret_key
    } else {
        text.to_string()
    };
    let key = key.trim();
    if key.is_empty() || key.chars().any(char::is_whitespace) {
        return Err(crate::Error::unexpected(
            "the Paystack secret is empty or not one word",
        ));
    }
    Ok(crate::config::Secret::new(key))
}

/// `{"username": .., "password": ..}` (the shape RDS writes).
pub fn parse_admin_secret(text: &str) -> crate::Result<(String, crate::config::Secret)> {
    #[derive(serde::Deserialize)]
    struct Shape {
        username: String,
        password: String,
    }
    let shape: Shape = serde_json::from_str(text).map_err(|_| {
        crate::Error::unexpected("the admin secret is not {\"username\", \"password\"} JSON")
    })?;
    Ok((shape.username, crate::config::Secret::new(shape.password)))
}

#[cfg(test)]
mod tests;
