//! Which chat model this environment runs, decided once at cold start for chat and
//! distill-memories alike.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `FARMOPS_CHAT_PROVIDER` | `offline` | `offline` (the deterministic local model) or `bedrock` (Converse); any other value stops the cold start naming the variable, so a misspelling never runs (and bills) the offline model in production |
//! | `FARMOPS_GUARDRAIL_ID`, `FARMOPS_GUARDRAIL_VERSION` | unset | the Bedrock guardrail every Converse call carries ([`super::guardrail`]); both or neither |

use std::sync::Arc;

use super::{ChatModel, bedrock::BedrockChat, guardrail::GuardrailSettings};
use crate::config::{ConfigError, Env};
use crate::error::{Error, Result};

/// The variable that names the provider.
pub const PROVIDER_VAR: &str = "FARMOPS_CHAT_PROVIDER";

/// The model provider named by [`PROVIDER_VAR`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    #[cfg(feature = "offline")]
    Offline,
    Bedrock,
}

impl Provider {
    /// The provider a raw setting names: unset or blank is `Provider::Offline`; anything but
    /// `offline` or `bedrock` is refused. In a build without the cargo feature `offline`,
    /// `offline` (and so unset or blank) is refused too, naming the variable.
    pub fn parse(raw: Option<&str>) -> std::result::Result<Provider, ConfigError> {
        match raw.map(str::trim) {
            #[cfg(feature = "offline")]
            None | Some("") | Some("offline") => Ok(Provider::Offline),
            #[cfg(not(feature = "offline"))]
            None | Some("") | Some("offline") => Err(ConfigError::Invalid {
                var: PROVIDER_VAR,
                reason: "offline (the default when unset): this build has no offline model \
                         (cargo feature `offline`); set bedrock"
                    .into(),
            }),
            Some("bedrock") => Ok(Provider::Bedrock),
            Some(other) => Err(ConfigError::Invalid {
                var: PROVIDER_VAR,
                reason: format!("{other:?}: must be offline or bedrock"),
            }),
        }
    }

    pub fn from_env<F: Fn(&str) -> Option<String>>(
        env: &Env<F>,
    ) -> std::result::Result<Provider, ConfigError> {
        Provider::parse(env.optional(PROVIDER_VAR).as_deref())
    }
}

/// The model a function runs, built once at cold start: the offline choice is left to the
/// caller (chat runs `super::offline::OfflineChat`, distill its offline extractor; feature
/// `offline`).
pub enum ConfiguredModel {
    #[cfg(feature = "offline")]
    Offline,
    Bedrock(Arc<dyn ChatModel>),
}

/// [`Provider::from_env`], and for Bedrock the Converse client for `model_id` (a model without
/// a price in [`crate::credits::price_for`] is refused: it could not be metered) over the cold
/// start's shared Bedrock client (`aws`).
pub async fn from_env<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    model_id: &str,
    aws: &crate::aws::ColdStartAws,
) -> Result<ConfiguredModel> {
    match Provider::from_env(env).map_err(|e| Error::unexpected(e.to_string()))? {
        #[cfg(feature = "offline")]
        Provider::Offline => Ok(ConfiguredModel::Offline),
        Provider::Bedrock => {
            if crate::credits::price_for(model_id).is_none() {
                return Err(Error::unexpected(format!(
                    "model {model_id} has no price: it cannot be metered"
                )));
            }
            let guardrail =
                GuardrailSettings::from_env(env).map_err(|e| Error::unexpected(e.to_string()))?;
            Ok(ConfiguredModel::Bedrock(Arc::new(
                BedrockChat::new(aws.bedrock(env).await?, model_id.to_string())
                    .with_guardrail(guardrail),
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(not(feature = "offline"))]
    #[test]
    fn without_the_offline_feature_offline_and_unset_are_refused_naming_the_variable() {
        for raw in [None, Some(""), Some("offline")] {
            let message = Provider::parse(raw).unwrap_err().to_string();
            assert!(message.contains(PROVIDER_VAR), "{message}");
            assert!(message.contains("offline"), "{message}");
        }
        assert_eq!(Provider::parse(Some("bedrock")).unwrap(), Provider::Bedrock);
    }

    #[cfg(feature = "offline")]
    #[test]
    fn parse_accepts_the_two_providers_and_refuses_anything_else() {
        let cases: &[(Option<&str>, Option<Provider>)] = &[
            (None, Some(Provider::Offline)),
            (Some(""), Some(Provider::Offline)),
            (Some("offline"), Some(Provider::Offline)),
            (Some(" bedrock "), Some(Provider::Bedrock)),
            (Some("bedrock"), Some(Provider::Bedrock)),
            (Some("bedrok"), None),
            (Some("Bedrock"), None),
            (Some("openai"), None),
        ];
        for (raw, expected) in cases {
            match (Provider::parse(*raw), expected) {
                (Ok(p), Some(e)) => assert_eq!(p, *e, "{raw:?}"),
                (Err(err), None) => {
                    let message = err.to_string();
                    assert!(message.contains(PROVIDER_VAR), "{message}");
                    assert!(message.contains(raw.unwrap().trim()), "{message}");
                }
                (got, want) => panic!("{raw:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[tokio::test]
    async fn from_env_refuses_a_half_configured_guardrail() {
        let env = Env(|k: &str| match k {
            PROVIDER_VAR => Some("bedrock".to_string()),
            "FARMOPS_GUARDRAIL_ID" => Some("gr-1".to_string()),
            _ => None,
        });
        let err = from_env(
            &env,
            crate::model::DEFAULT_BEDROCK_MODEL_ID,
            &Default::default(),
        )
        .await
        .err()
        .unwrap();
        assert!(
            err.to_string().contains("FARMOPS_GUARDRAIL_VERSION"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn from_env_refuses_an_unpriced_bedrock_model() {
        let env = Env(|k: &str| (k == PROVIDER_VAR).then(|| "bedrock".to_string()));
        let err = from_env(&env, "vendor.unknown-model", &Default::default())
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("vendor.unknown-model"), "{err}");
    }
}
