//! Text embeddings: the [`Embedder`] trait, Amazon Titan Text Embeddings V2 on Bedrock
//! ([`TitanEmbedder`]) and a deterministic offline model (`OfflineEmbedder`, cargo feature
//! `offline`, on by default, like the offline chat model) for tests and deployments without
//! Bedrock. Every vector has [`DIMENSIONS`] components, L2-normalised, so
//! cosine distance is what `embeddings_hnsw` (vector_cosine_ops) ranks by.

use async_trait::async_trait;
use aws_sdk_bedrockruntime::primitives::Blob;
use serde::Deserialize;

use crate::error::{Error, Result};

/// The width of `embeddings.embedding`.
pub const DIMENSIONS: usize = 1024;
pub const TITAN_MODEL_ID: &str = "amazon.titan-embed-text-v2:0";

/// The variable that names the embedder ([`embedder_from_env`]).
pub const EMBEDDER_VAR: &str = "FARMOPS_EMBEDDER";

#[cfg(feature = "offline")]
mod offline;
#[cfg(feature = "offline")]
pub use offline::{OFFLINE_MODEL_ID, OfflineEmbedder, offline_vector};

/// Vectors for a batch of texts, in order, and the input tokens the provider counted.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedded {
    pub vectors: Vec<Vec<f32>>,
    pub input_tokens: u64,
}

#[async_trait]
pub trait Embedder: Send + Sync {
    /// Stored in `embeddings.embedding_model`; priced by [`crate::credits::price_for`].
    fn model_id(&self) -> &str;
    fn dimensions(&self) -> usize {
        DIMENSIONS
    }
    async fn embed(&self, texts: &[String]) -> Result<Embedded>;
}

/// A conservative token estimate for reserving credits before the call (about 4 characters
/// a token in English; we count 1 token per 2 characters plus two, so never below actual).
pub fn token_upper_bound(text: &str) -> u64 {
    text.chars().count() as u64 / 2 + 2
}

// ---------------------------------------------------------------- Titan on Bedrock

/// `amazon.titan-embed-text-v2:0` through InvokeModel, one call per text (the model takes one
/// `inputText`). Throttling and timeouts are [`Error::ModelUnavailable`]; any other failure or a
/// malformed answer is [`Error::ModelFailed`].
pub struct TitanEmbedder {
    client: aws_sdk_bedrockruntime::Client,
}

impl TitanEmbedder {
    pub fn new(client: aws_sdk_bedrockruntime::Client) -> Self {
        TitanEmbedder { client }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TitanResponse {
    embedding: Vec<f32>,
    input_text_token_count: u64,
}

#[async_trait]
impl Embedder for TitanEmbedder {
    fn model_id(&self) -> &str {
        TITAN_MODEL_ID
    }

    async fn embed(&self, texts: &[String]) -> Result<Embedded> {
        let mut out = Embedded {
            vectors: Vec::with_capacity(texts.len()),
            input_tokens: 0,
        };
        for text in texts {
            let body = serde_json::json!({
                "inputText": text,
                "dimensions": DIMENSIONS,
                "normalize": true,
            });
            let result = self
                .client
                .invoke_model()
                .model_id(TITAN_MODEL_ID)
                .content_type("application/json")
                .accept("application/json")
                .body(Blob::new(body.to_string().into_bytes()))
                .send()
                .await;
            let output = result.map_err(crate::aws::classify_bedrock_error)?;
            let parsed: TitanResponse = serde_json::from_slice(output.body().as_ref())
                .map_err(|e| Error::ModelFailed(format!("malformed Titan response: {e}")))?;
            if parsed.embedding.len() != DIMENSIONS {
                return Err(Error::ModelFailed(format!(
                    "Titan returned {} dimensions, expected {DIMENSIONS}",
                    parsed.embedding.len()
                )));
            }
            if parsed.embedding.iter().any(|x| !x.is_finite()) {
                return Err(Error::ModelFailed(
                    "Titan returned a non-finite value".into(),
                ));
            }
            out.input_tokens += parsed.input_text_token_count;
            out.vectors.push(parsed.embedding);
        }
        Ok(out)
    }
}

/// The embedder named by [`EMBEDDER_VAR`] (`titan`: Bedrock Titan v2 through the cold
/// start's shared Bedrock client, [`crate::aws::ColdStartAws::bedrock`]; `offline`: the
/// offline embedder), `default` when unset. Built once at cold start by every function that
/// embeds (chat, reembed, distill-memories). In a build without the cargo feature `offline`,
/// `offline` (named or the default) stops the cold start naming the variable.
pub async fn embedder_from_env<F: Fn(&str) -> Option<String>>(
    env: &crate::config::Env<F>,
    default: &str,
    aws: &crate::aws::ColdStartAws,
) -> Result<std::sync::Arc<dyn Embedder>> {
    let named = env.optional(EMBEDDER_VAR);
    let choice = named.clone().unwrap_or_else(|| default.to_string());
    match choice.as_str() {
        #[cfg(feature = "offline")]
        "offline" => Ok(std::sync::Arc::new(OfflineEmbedder::default())),
        #[cfg(not(feature = "offline"))]
        "offline" => Err(Error::unexpected(format!(
            "{EMBEDDER_VAR}: offline{}: this build has no offline embedder (cargo feature \
             `offline`); set titan",
            if named.is_none() {
                " (the default when unset)"
            } else {
                ""
            }
        ))),
        "titan" => Ok(std::sync::Arc::new(TitanEmbedder::new(
            aws.bedrock(env).await?,
        ))),
        other => Err(Error::unexpected(format!(
            "{EMBEDDER_VAR} must be titan or offline, not {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unknown_embedder_is_refused_naming_the_variable() {
        let env = crate::config::Env(|k: &str| (k == EMBEDDER_VAR).then(|| "titan2".to_string()));
        let aws = crate::aws::ColdStartAws::default();
        let Err(e) = embedder_from_env(&env, "offline", &aws).await else {
            panic!("titan2 is no embedder");
        };
        assert!(e.to_string().contains(EMBEDDER_VAR), "{e}");
    }

    #[cfg(not(feature = "offline"))]
    #[tokio::test]
    async fn without_the_offline_feature_offline_and_unset_are_refused_naming_the_variable() {
        let aws = crate::aws::ColdStartAws::default();
        for raw in [None, Some("offline")] {
            let env = crate::config::Env(|k: &str| {
                (k == EMBEDDER_VAR)
                    .then(|| raw.map(str::to_string))
                    .flatten()
            });
            let Err(e) = embedder_from_env(&env, "offline", &aws).await else {
                panic!("{raw:?}: no offline embedder in this build");
            };
            let message = e.to_string();
            assert!(message.contains(EMBEDDER_VAR), "{message}");
            assert!(message.contains("offline"), "{message}");
        }
    }

    #[test]
    fn estimate_never_below_offline_count() {
        for t in ["a", "hello world", "one two three four five six"] {
            let offline = t.split_whitespace().count() as u64 + 1;
            assert!(token_upper_bound(t) >= offline, "{t}");
        }
    }
}
