//! The reembed sweep: stale embeddings re-embedded per farm in locked, metered batches.

use serde::Serialize;
use tokio_postgres::types::Type;
use uuid::Uuid;

use super::{
    GLOBAL_FARM_ID, SWEEP_BATCH, content_hash,
    embedding::{embed_checked, embed_metered, open_embedding},
    vector_text,
};
use crate::{
    credits::{Feature, RunEnd},
    db::Db,
    embed::Embedder,
    error::{Error, Result},
    membership::{Role, require_role},
};

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FarmSweep {
    pub farm_id: Uuid,
    pub reembedded: u64,
    pub batches: u64,
    /// Why the farm was left (partly) unswept: `insufficient_credits`, or a model error code.
    pub skipped: Option<String>,
}

const STALE_SQL: &str = "SELECT id, content FROM embeddings
   WHERE farm_id = $1
     AND (embedding_model <> $2 OR content_hash <> encode(sha256(convert_to(content, 'UTF8')), 'hex'))
   ORDER BY id
   LIMIT $3
   FOR UPDATE SKIP LOCKED";

/// One batch; `Ok(0)` when nothing stale is left (or all of it is locked by another sweep).
async fn reembed_batch(db: &Db, embedder: &dyn Embedder, farm_id: Uuid, batch: i64) -> Result<u64> {
    let model = embedder.model_id().to_string();
    let tx = db.tenant(farm_id).await?;
    let rows = tx
        .query(
            STALE_SQL,
            &[
                (&farm_id, Type::UUID),
                (&model, Type::TEXT),
                (&batch, Type::INT8),
            ],
        )
        .await?;
    if rows.is_empty() {
        tx.rollback().await?;
        return Ok(0);
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();
    let texts: Vec<String> = rows.iter().map(|r| r.get(1)).collect();
    // The shared knowledge base is the operator's: its sweep is not metered.
    let mut metered = None;
    if farm_id != GLOBAL_FARM_ID {
        let tenant = db.tenant(farm_id).await?;
        let run = open_embedding(
            db,
            tenant,
            Feature::Reembed,
            &model,
            None,
            "reembed sweep",
            &texts,
        );
        metered = Some(run.await?);
    }
    let embedded = match &mut metered {
        Some(run) => embed_metered(db, embedder, run, &texts).await?,
        None => embed_checked(embedder, &texts).await?,
    };
    let hashes: Vec<String> = texts.iter().map(|c| content_hash(c)).collect();
    let vectors: Vec<String> = embedded.vectors.iter().map(|v| vector_text(v)).collect();
    tx.query(
        "UPDATE embeddings e
            SET embedding = t.v::vector, embedding_model = $2, content_hash = t.h, updated_at = now()
           FROM unnest($3::uuid[], $4::text[], $5::text[]) AS t(id, h, v)
          WHERE e.farm_id = $1 AND e.id = t.id",
        &[
            (&farm_id, Type::UUID),
            (&model, Type::TEXT),
            (&ids, Type::UUID_ARRAY),
            (&hashes, Type::TEXT_ARRAY),
            (&vectors, Type::TEXT_ARRAY),
        ],
    )
    .await?;
    if let Some(run) = &metered {
        run.settle(&tx, RunEnd::Succeeded { summary: None }).await?;
    }
    tx.commit().await?;
    Ok(ids.len() as u64)
}

/// Re-embeds every stale row of one farm, batch by batch, until none is left. A farm that
/// cannot pay or a model error stops the farm's sweep and is reported in `skipped`.
pub async fn reembed_farm(
    db: &Db,
    embedder: &dyn Embedder,
    farm_id: Uuid,
    batch: i64,
) -> Result<FarmSweep> {
    let mut report = FarmSweep {
        farm_id,
        reembedded: 0,
        batches: 0,
        skipped: None,
    };
    loop {
        match reembed_batch(db, embedder, farm_id, batch).await {
            Ok(0) => return Ok(report),
            Ok(n) => {
                report.reembedded += n;
                report.batches += 1;
            }
            Err(
                e @ (Error::InsufficientCredits { .. }
                | Error::MemberBudgetExceeded { .. }
                | Error::ModelFailed(_)
                | Error::ModelUnavailable(_)),
            ) => {
                report.skipped = Some(e.code().to_string());
                return Ok(report);
            }
            Err(e) => return Err(e),
        }
    }
}

/// [`reembed_farm`] for a member (manager or owner) of the farm.
pub async fn reembed_farm_as(
    db: &Db,
    embedder: &dyn Embedder,
    farm_id: Uuid,
    user_id: &str,
) -> Result<FarmSweep> {
    let tx = db.tenant(farm_id).await?;
    require_role(
        &tx,
        user_id,
        "re-embed knowledge",
        Role::may_manage_knowledge,
    )
    .await?;
    tx.rollback().await?;
    reembed_farm(db, embedder, farm_id, SWEEP_BATCH).await
}

/// The scheduled sweep: every farm with stale rows (global farm included).
pub async fn sweep(db: &Db, embedder: &dyn Embedder, batch: i64) -> Result<Vec<FarmSweep>> {
    let farms: Vec<Uuid> = {
        let client = db.client().await?;
        client
            .query_typed(
                "SELECT farms_with_stale_embeddings($1)",
                &[(&embedder.model_id(), Type::TEXT)],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    let mut out = Vec::with_capacity(farms.len());
    for farm in farms {
        out.push(reembed_farm(db, embedder, farm, batch).await?);
    }
    Ok(out)
}
