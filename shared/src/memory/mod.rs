//! Farm memories: durable facts distilled from conversations, and their use as chat context.
//!
//! * [`distill`]: the distill-memories job (`run_once`), generic over a [`FactExtractor`] and a
//!   [`crate::embed::Embedder`] (the one embedder trait, which reports its token count) so any
//!   model (Bedrock, the offline providers) can plug in.
//! * [`extract`]: the deterministic, rule-based offline [`FactExtractor`].
//! * [`model_extract`]: the model-backed [`FactExtractor`] (one forced `record_memories` tool
//!   call over any [`crate::model::ChatModel`], e.g. Bedrock Converse).
//! * [`relevant_memories`]: the farm's current (not superseded) memories nearest a query,
//!   bounded, for the chat context.
//!
//! A memory has a `subject`; a newer fact about the same subject supersedes the older one
//! (`superseded_by`/`superseded_at` set, the row kept). Superseded memories are never served.

pub mod distill;
#[cfg(feature = "offline")]
pub mod extract;
pub mod model_extract;

use async_trait::async_trait;
use serde::Serialize;
use uuid::Uuid;

use crate::{
    db::{TenantTx, Type},
    error::{Error, Result},
};

/// Dimensions of every stored embedding (`embeddings.embedding vector(1024)`): the
/// embedders' one constant.
pub const EMBEDDING_DIMS: usize = crate::embed::DIMENSIONS;
/// Most memories [`relevant_memories`] returns, whatever `k` asks.
pub const MAX_RELEVANT: usize = 50;

/// One message of a conversation, as the extractor reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TranscriptMessage {
    /// `user` or `assistant`.
    pub role: String,
    pub content: String,
}

/// A durable fact: what it is about (normalised, lower case) and what it says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fact {
    pub subject: String,
    pub content: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// What an extractor returns for one transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Extraction {
    pub facts: Vec<Fact>,
    pub summary: String,
    /// Tokens consumed, for metering.
    pub usage: Usage,
    /// A Bedrock guardrail intervened (`stopReason = guardrail_intervened`): then `facts` and
    /// `summary` are empty and the distiller writes no memory from this call.
    pub guardrail: Option<GuardrailBlock>,
}

/// What a Bedrock guardrail said when it stopped an extraction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuardrailBlock {
    /// The trace's assessment ([`crate::model::guardrail::assessment_json`]).
    pub assessment: serde_json::Value,
    /// The guardrail's blocked message (what the model's answer was replaced with).
    pub blocked_message: String,
}

/// Turns a transcript into durable facts and a summary.
#[async_trait]
pub trait FactExtractor: Send + Sync {
    /// The model id, priced in `credits::price_for`.
    fn model_id(&self) -> &str;
    /// The cap on output tokens per call (the reservation is sized from it).
    fn max_output_tokens(&self) -> u64;
    /// An upper bound on the input tokens of one call for any transcript the distiller hands
    /// over (the reservation is sized from it). The default, 4 bytes a token over the largest
    /// transcript plus 2,000 bytes, suits extractors that meter by [`tokens_metered_from_bytes`].
    fn max_input_tokens(&self) -> u64 {
        tokens_metered_from_bytes(distill::MAX_TRANSCRIPT_BYTES + 2000)
    }
    /// A guaranteed bound on the input tokens of the call for this transcript: what the run
    /// holds for before it. The static bound unless the extractor measures the request.
    fn input_token_bound(
        &self,
        _previous_summary: Option<&str>,
        _transcript: &[TranscriptMessage],
    ) -> u64 {
        self.max_input_tokens()
    }
    /// Facts stated in `transcript` (the messages not yet distilled) and a summary of the
    /// conversation, folding in `previous_summary` when there is one.
    async fn extract(
        &self,
        previous_summary: Option<&str>,
        transcript: &[TranscriptMessage],
    ) -> Result<Extraction>;
}

/// Tokens of a text as metered when the model does not say: 4 bytes a token, rounded up.
pub fn tokens_metered_from_bytes(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(4)
}

/// The hex SHA-256 of a passage (`embeddings.content_hash`): the documents' one.
pub use crate::documents::content_hash;

/// Checks an embedder's answer: one vector per text, each of the right size, finite.
pub fn check_vectors(vectors: &[Vec<f32>], texts: usize) -> Result<()> {
    if vectors.len() != texts {
        return Err(Error::ModelFailed(format!(
            "embedder returned {} vectors for {texts} texts",
            vectors.len()
        )));
    }
    if let Some(v) = vectors
        .iter()
        .find(|v| v.len() != EMBEDDING_DIMS || v.iter().any(|x| !x.is_finite()))
    {
        return Err(Error::ModelFailed(format!(
            "embedder returned a vector of {} dimensions (or non-finite values)",
            v.len()
        )));
    }
    Ok(())
}

/// A memory served to the chat context.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RelevantMemory {
    pub id: Uuid,
    pub content: String,
    pub subject: Option<String>,
    /// Cosine distance to the query (smaller is closer).
    pub distance: f64,
}

/// The farm's current memories nearest to `query_embedding`, nearest first, at most
/// `min(k, MAX_RELEVANT)`. Superseded memories are never returned.
///
/// An exact scan of the farm's own memory embeddings (`embeddings_farm` index, then distance):
/// a farm holds few memories, and an HNSW scan filtered afterwards could return fewer than k.
#[tracing::instrument(skip(tx, query_embedding), fields(farm_id = %tx.farm_id()))]
pub async fn relevant_memories(
    tx: &TenantTx,
    query_embedding: &[f32],
    k: usize,
) -> Result<Vec<RelevantMemory>> {
    if query_embedding.len() != EMBEDDING_DIMS || query_embedding.iter().any(|x| !x.is_finite()) {
        return Err(Error::unexpected(format!(
            "a query embedding has {EMBEDDING_DIMS} finite dimensions, not {}",
            query_embedding.len()
        )));
    }
    let k = k.min(MAX_RELEVANT) as i64;
    if k == 0 {
        return Ok(Vec::new());
    }
    let farm_id = tx.farm_id();
    let rows = tx
        .query(
            "SELECT m.id, m.content, m.subject, e.embedding <=> $2::float4[]::vector AS distance
               FROM embeddings e
               JOIN memories m ON m.farm_id = e.farm_id AND m.id = e.memory_id
              WHERE e.farm_id = $1 AND m.farm_id = $1 AND m.superseded_by IS NULL
              ORDER BY distance, m.id
              LIMIT $3",
            &[
                (&farm_id, Type::UUID),
                (&query_embedding, Type::FLOAT4_ARRAY),
                (&k, Type::INT8),
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| RelevantMemory {
            id: r.get(0),
            content: r.get(1),
            subject: r.get(2),
            distance: r.get(3),
        })
        .collect())
}

/// [`relevant_memories`] for a query text, embedded with `embedder`.
pub async fn relevant_memories_for_text(
    tx: &TenantTx,
    embedder: &dyn crate::embed::Embedder,
    query: &str,
    k: usize,
) -> Result<Vec<RelevantMemory>> {
    let texts = [query.to_string()];
    let vectors = embedder.embed(&texts).await?.vectors;
    check_vectors(&vectors, 1)?;
    relevant_memories(tx, &vectors[0], k).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_checked() {
        let good = vec![0.0f32; EMBEDDING_DIMS];
        assert!(check_vectors(std::slice::from_ref(&good), 1).is_ok());
        assert!(check_vectors(std::slice::from_ref(&good), 2).is_err());
        assert!(check_vectors(&[vec![0.0; 3]], 1).is_err());
        let mut nan = good;
        nan[5] = f32::NAN;
        assert!(check_vectors(&[nan], 1).is_err());
        assert_eq!(tokens_metered_from_bytes(0), 0);
        assert_eq!(tokens_metered_from_bytes(9), 3);
        assert_eq!(content_hash("a").len(), 64);
    }
}
