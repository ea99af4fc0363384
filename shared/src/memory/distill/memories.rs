//! Where an extracted fact goes among the farm's current memories: the decision (pure) and
//! the statements that read the memories and insert or supersede.

use uuid::Uuid;

use super::DistillState;
use crate::{
    db::{TenantTx, Type},
    error::Result,
    memory::content_hash,
};

/// What to do with one extracted fact, given the farm's current memories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Same statement, or one near enough: not inserted again.
    Duplicate,
    /// A different statement about a subject a current memory already covers: insert it and
    /// mark the older one superseded.
    Supersede,
    Insert,
}

/// Pure: exact same content -> duplicate; same subject, different content -> supersede (even
/// when the wording is close: "on Mondays" vs "on Thursdays" embed near each other); else a
/// current memory within the similarity threshold -> duplicate; else insert.
pub fn classify(
    exact: bool,
    same_subject: bool,
    nearest_distance: Option<f64>,
    duplicate_similarity: f64,
) -> Decision {
    if exact {
        Decision::Duplicate
    } else if same_subject {
        Decision::Supersede
    } else if nearest_distance.is_some_and(|d| 1.0 - d >= duplicate_similarity) {
        Decision::Duplicate
    } else {
        Decision::Insert
    }
}

pub(super) async fn classify_fact(
    tx: &TenantTx,
    subject: &str,
    content: &str,
    vector: &[f32],
    state: &DistillState,
) -> Result<Decision> {
    let farm_id = tx.farm_id();
    let row = tx
        .query_one(
            "SELECT
               EXISTS (SELECT 1 FROM memories WHERE farm_id = $1 AND superseded_by IS NULL
                          AND lower(content) = lower($2)),
               EXISTS (SELECT 1 FROM memories WHERE farm_id = $1 AND superseded_by IS NULL
                          AND subject = $3),
               (SELECT min(e.embedding <=> $4::float4[]::vector)
                  FROM embeddings e JOIN memories m ON m.farm_id = e.farm_id AND m.id = e.memory_id
                 WHERE e.farm_id = $1 AND m.superseded_by IS NULL)",
            &[
                (&farm_id, Type::UUID),
                (&content, Type::TEXT),
                (&subject, Type::TEXT),
                (&vector, Type::FLOAT4_ARRAY),
            ],
        )
        .await?;
    Ok(classify(
        row.get(0),
        row.get(1),
        row.get(2),
        state.config.duplicate_similarity,
    ))
}

/// Inserts a memory and its embedding; with `supersede`, marks the farm's current memories
/// about the same subject as superseded by it. Returns how many it superseded.
pub(super) async fn insert_memory(
    tx: &TenantTx,
    conversation_id: Uuid,
    subject: &str,
    content: &str,
    vector: &[f32],
    model: &str,
    supersede: bool,
) -> Result<usize> {
    let farm_id = tx.farm_id();
    let hash = content_hash(content);
    let id: Uuid = tx
        .query_one(
            "WITH m AS (
               INSERT INTO memories (farm_id, content, subject, conversation_id)
               VALUES ($1, $2, $3, $4) RETURNING id),
             e AS (
               INSERT INTO embeddings (farm_id, memory_id, content, content_hash, embedding_model, embedding)
               SELECT $1, m.id, $2, $5, $6, $7::float4[]::vector FROM m)
             SELECT id FROM m",
            &[
                (&farm_id, Type::UUID),
                (&content, Type::TEXT),
                (&subject, Type::TEXT),
                (&conversation_id, Type::UUID),
                (&hash, Type::TEXT),
                (&model, Type::TEXT),
                (&vector, Type::FLOAT4_ARRAY),
            ],
        )
        .await?
        .get(0);
    if !supersede {
        return Ok(0);
    }
    let rows = tx
        .query(
            "UPDATE memories SET superseded_by = $2, superseded_at = now()
              WHERE farm_id = $1 AND subject = $3 AND superseded_by IS NULL AND id <> $2
             RETURNING id",
            &[
                (&farm_id, Type::UUID),
                (&id, Type::UUID),
                (&subject, Type::TEXT),
            ],
        )
        .await?;
    Ok(rows.len())
}
