//! Text embeddings: the [`Embedder`] trait, Amazon Titan Text Embeddings V2 on Bedrock
//! ([`TitanEmbedder`]) and a deterministic offline model ([`OfflineEmbedder`]) for tests and
//! deployments without Bedrock. Every vector has [`DIMENSIONS`] components, L2-normalised, so
//! cosine distance is what `embeddings_hnsw` (vector_cosine_ops) ranks by.

use std::hash::{Hash, Hasher};

use async_trait::async_trait;
use aws_sdk_bedrockruntime::primitives::Blob;
use serde::Deserialize;

use crate::error::{Error, Result};

/// The width of `embeddings.embedding`.
pub const DIMENSIONS: usize = 1024;
pub const TITAN_MODEL_ID: &str = "amazon.titan-embed-text-v2:0";
pub const OFFLINE_MODEL_ID: &str = "offline-embedder";

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
pub fn estimate_tokens(text: &str) -> u64 {
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

// ---------------------------------------------------------------- offline

/// Deterministic, no network: hashed lowercase word unigrams, word bigrams and character
/// trigrams into 1024 buckets (signed by a second hash bit), L2-normalised. Texts sharing
/// words or word fragments are near in cosine distance; identical texts are identical vectors.
/// An optional `model_id` override lets tests simulate a model change.
pub struct OfflineEmbedder {
    model_id: String,
}

impl Default for OfflineEmbedder {
    fn default() -> Self {
        OfflineEmbedder {
            model_id: OFFLINE_MODEL_ID.into(),
        }
    }
}

impl OfflineEmbedder {
    pub fn with_model_id(model_id: impl Into<String>) -> Self {
        OfflineEmbedder {
            model_id: model_id.into(),
        }
    }
}

fn bucket(feature: &str) -> (usize, f32) {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    feature.hash(&mut h);
    let v = h.finish();
    #[allow(clippy::cast_possible_truncation)] // a remainder below DIMENSIONS (1024)
    let index = (v % DIMENSIONS as u64) as usize;
    (index, if v >> 63 == 0 { 1.0 } else { -1.0 })
}

/// The offline vector of `text` (pure; exposed for tests that need a query vector).
pub fn offline_vector(text: &str) -> Vec<f32> {
    let mut v = vec![0f32; DIMENSIONS];
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let mut add = |f: &str, weight: f32| {
        let (i, sign) = bucket(f);
        v[i] += sign * weight;
    };
    for w in &words {
        add(&format!("w:{w}"), 1.0);
        let chars: Vec<char> = format!(" {w} ").chars().collect();
        for t in chars.windows(3) {
            add(&format!("c:{}", t.iter().collect::<String>()), 0.5);
        }
    }
    for pair in words.windows(2) {
        add(&format!("b:{} {}", pair[0], pair[1]), 1.0);
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    } else {
        // No word at all (punctuation only): a fixed unit vector, still valid for cosine.
        v[0] = 1.0;
    }
    v
}

#[async_trait]
impl Embedder for OfflineEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    async fn embed(&self, texts: &[String]) -> Result<Embedded> {
        Ok(Embedded {
            vectors: texts.iter().map(|t| offline_vector(t)).collect(),
            input_tokens: texts
                .iter()
                .map(|t| t.split_whitespace().count() as u64 + 1)
                .sum(),
        })
    }
}

/// The embedder named by `FARMOPS_EMBEDDER` (`titan`: Bedrock Titan v2 through the cold
/// start's shared Bedrock client, [`crate::aws::ColdStartAws::bedrock`]; `offline`:
/// [`OfflineEmbedder`]), `default` when unset. Built once at cold start by every function that
/// embeds (chat, reembed, distill-memories).
pub async fn embedder_from_env<F: Fn(&str) -> Option<String>>(
    env: &crate::config::Env<F>,
    default: &str,
    aws: &crate::aws::ColdStartAws,
) -> Result<std::sync::Arc<dyn Embedder>> {
    let choice = env
        .optional("FARMOPS_EMBEDDER")
        .unwrap_or_else(|| default.to_string());
    match choice.as_str() {
        "offline" => Ok(std::sync::Arc::new(OfflineEmbedder::default())),
        "titan" => Ok(std::sync::Arc::new(TitanEmbedder::new(
            aws.bedrock(env).await?,
        ))),
        other => Err(Error::unexpected(format!(
            "FARMOPS_EMBEDDER must be titan or offline, not {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cos(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn offline_is_deterministic_normalised_and_lexical() {
        let a = offline_vector("Irrigate the maize field on Tuesday");
        assert_eq!(a.len(), DIMENSIONS);
        assert_eq!(a, offline_vector("Irrigate the maize field on Tuesday"));
        assert!((cos(&a, &a) - 1.0).abs() < 1e-5);
        let near = offline_vector("irrigate maize fields");
        let far = offline_vector("vaccinate the dairy herd");
        assert!(cos(&a, &near) > cos(&a, &far) + 0.2);
        let empty = offline_vector("!!!");
        assert!((cos(&empty, &empty) - 1.0).abs() < 1e-5);
    }

    #[test]
    fn estimate_never_below_offline_count() {
        for t in ["a", "hello world", "one two three four five six"] {
            let offline = t.split_whitespace().count() as u64 + 1;
            assert!(estimate_tokens(t) >= offline, "{t}");
        }
    }
}
