//! Tenant knowledge: documents split into chunks and embedded, memory and summary embeddings,
//! and the reembed sweep.
//!
//! * **Chunks**: at most [`CHUNK_CHARS`] (800) characters, consecutive chunks overlapping by
//!   about [`CHUNK_OVERLAP`] (200) characters, cut on whitespace when there is any in the last
//!   half of the window. A chunk's `content_hash` is the hex SHA-256 of its text.
//! * **Add**: validate, check the role (worker and above), reserve the worst case (token
//!   estimate, feature `embed`) in its own committed transaction, call the embedder, then ONE
//!   transaction inserts the document, all its embeddings and settles the run with the actual
//!   tokens. A failed model call settles the run as failed (full refund) and writes nothing.
//! * **Delete**: one statement; the embeddings go with it (`ON DELETE CASCADE`) in the same
//!   transaction, so no search can see a chunk of a deleted document once it commits.
//! * **Reembed sweep**: per farm, batches of at most [`SWEEP_BATCH`] stale rows (model differs
//!   from the configured embedder, or content hash mismatch) locked `FOR UPDATE SKIP LOCKED` in
//!   the farm's tenant transaction; the batch's worst case is reserved (committed, feature
//!   `reembed`) before the model call; rows are updated and the run settled in the batch's
//!   transaction. Concurrent sweeps never take the same row; a crash rolls the batch back (the
//!   reservation is released by the expiry job), so the sweep is idempotent and resumable. A
//!   farm that cannot pay is skipped and reported, its rows untouched. Global-farm rows are
//!   re-embedded unmetered (the operator's cost). A batch holds two pool connections at once
//!   (its locking transaction and the committed reservation): the pool needs at least 2.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::{
    credits::{self, Feature, MeteredRun, NextCall, RunEnd, RunSpec},
    db::{Db, TenantTx},
    embed::{Embedder, estimate_tokens},
    error::{Error, FieldError, Result},
    membership::{Role, require_role},
};

/// `global_farm_id()` in SQL: the shared knowledge base every tenant reads.
pub const GLOBAL_FARM_ID: Uuid = Uuid::nil();
pub const CHUNK_CHARS: usize = 800;
pub const CHUNK_OVERLAP: usize = 200;
pub const SWEEP_BATCH: i64 = 64;
pub const TITLE_MAX: usize = 300;
pub const BODY_MAX: usize = 200_000;

/// Splits `text` into overlapping chunks (see the module doc). Pure.
pub fn chunk(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let len = chars.len();
    let mut out = Vec::new();
    let mut start = 0;
    while start < len {
        let mut end = (start + CHUNK_CHARS).min(len);
        if end < len {
            let floor = start + CHUNK_CHARS / 2;
            if let Some(ws) = (floor..end).rev().find(|&i| chars[i].is_whitespace()) {
                end = ws;
            }
        }
        let piece: String = chars[start..end].iter().collect();
        let piece = piece.trim();
        if !piece.is_empty() {
            out.push(piece.to_string());
        }
        if end >= len {
            break;
        }
        // Next window starts OVERLAP before the cut, moved forward to a word start.
        let mut next = end.saturating_sub(CHUNK_OVERLAP).max(start + 1);
        if let Some(ws) = (next..end).find(|&i| chars[i].is_whitespace()) {
            next = ws + 1;
        }
        start = next;
    }
    out
}

pub fn content_hash(content: &str) -> String {
    hex::encode(Sha256::digest(content.as_bytes()))
}

/// pgvector's text form, bound as TEXT and cast with `::vector` in SQL.
pub fn vector_text(v: &[f32]) -> String {
    let mut s = String::with_capacity(v.len() * 12);
    s.push('[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&x.to_string());
    }
    s.push(']');
    s
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDocument {
    pub title: String,
    pub body: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AddedDocument {
    pub id: Uuid,
    pub chunks: usize,
    pub run_id: Uuid,
    pub credits_charged: i64,
}

fn validate(doc: &NewDocument) -> Result<()> {
    let mut errors = Vec::new();
    let t = doc.title.trim().chars().count();
    if t == 0 || doc.title.chars().count() > TITLE_MAX {
        errors.push(FieldError::new(
            "title",
            format!("1 to {TITLE_MAX} characters"),
        ));
    }
    let b = doc.body.trim().chars().count();
    if b == 0 || doc.body.chars().count() > BODY_MAX {
        errors.push(FieldError::new(
            "body",
            format!("1 to {BODY_MAX} characters"),
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(errors))
    }
}

/// Opens the embedding run of `texts` in `tx`, holding exactly what their token bound costs
/// (an embedding is one call; its output is not metered).
async fn open_embedding(
    db: &Db,
    tx: TenantTx,
    feature: Feature,
    model: &str,
    user_id: Option<&str>,
    summary: &str,
    texts: &[String],
) -> Result<MeteredRun> {
    let spec = RunSpec {
        feature,
        model,
        price: credits::priced(model)?,
        user_id,
        request_summary: Some(summary),
    };
    let tokens: u64 = texts.iter().map(|t| estimate_tokens(t)).sum();
    let (run, _) = MeteredRun::open(db, tx, spec, NextCall::input_only(tokens)).await?;
    Ok(run)
}

/// Embeds `texts`: one vector per text, or [`Error::ModelFailed`].
async fn embed_checked(
    embedder: &dyn Embedder,
    texts: &[String],
) -> Result<crate::embed::Embedded> {
    let embedded = embedder.embed(texts).await?;
    if embedded.vectors.len() != texts.len() {
        return Err(Error::ModelFailed(
            "embedder returned the wrong number of vectors".into(),
        ));
    }
    Ok(embedded)
}

/// Embeds `texts` within `run`: the usage is recorded; a failure (or the wrong number of
/// vectors) settles the run as failed.
async fn embed_metered(
    db: &Db,
    embedder: &dyn Embedder,
    run: &mut MeteredRun,
    texts: &[String],
) -> Result<crate::embed::Embedded> {
    match embed_checked(embedder, texts).await {
        Ok(e) => {
            run.record(crate::model::Usage {
                input_tokens: e.input_tokens,
                output_tokens: 0,
            });
            Ok(e)
        }
        Err(e) => {
            run.settle_failed(db, &e.to_string()).await?;
            Err(e)
        }
    }
}

/// Adds a document for `user_id` (role worker or above), embedded and metered.
pub async fn add_document(
    db: &Db,
    embedder: &dyn Embedder,
    farm_id: Uuid,
    user_id: &str,
    doc: &NewDocument,
) -> Result<AddedDocument> {
    validate(doc)?;
    let chunks = chunk(&doc.body);
    let model = embedder.model_id().to_string();
    let tx = db.tenant(farm_id).await?;
    require_role(&tx, user_id, "add documents", |r| r >= Role::Worker).await?;
    let mut run = open_embedding(
        db,
        tx,
        Feature::Embed,
        &model,
        Some(user_id),
        "add document",
        &chunks,
    )
    .await?;
    let embedded = embed_metered(db, embedder, &mut run, &chunks).await?;
    let tx = db.tenant(farm_id).await?;
    let id: Uuid = tx
        .query_one(
            "INSERT INTO documents (farm_id, title, body, created_by) VALUES ($1, $2, $3, $4)
             RETURNING id",
            &[
                (&farm_id, Type::UUID),
                (&doc.title, Type::TEXT),
                (&doc.body, Type::TEXT),
                (&user_id, Type::TEXT),
            ],
        )
        .await?
        .get(0);
    let indexes: Vec<i32> = (0..chunks.len() as i32).collect();
    let hashes: Vec<String> = chunks.iter().map(|c| content_hash(c)).collect();
    let vectors: Vec<String> = embedded.vectors.iter().map(|v| vector_text(v)).collect();
    tx.query(
        "INSERT INTO embeddings (farm_id, document_id, chunk_index, content, content_hash,
                                 embedding_model, embedding)
         SELECT $1, $2, t.i, t.c, t.h, $3, t.v::vector
           FROM unnest($4::int4[], $5::text[], $6::text[], $7::text[]) AS t(i, c, h, v)",
        &[
            (&farm_id, Type::UUID),
            (&id, Type::UUID),
            (&model, Type::TEXT),
            (&indexes, Type::INT4_ARRAY),
            (&chunks, Type::TEXT_ARRAY),
            (&hashes, Type::TEXT_ARRAY),
            (&vectors, Type::TEXT_ARRAY),
        ],
    )
    .await?;
    run.settle(&tx, RunEnd::Succeeded { summary: None }).await?;
    tx.commit().await?;
    Ok(AddedDocument {
        id,
        chunks: chunks.len(),
        run_id: run.run_id(),
        credits_charged: run.charge(),
    })
}

/// Deletes a document and its embeddings in one transaction (manager or owner).
pub async fn delete_document(db: &Db, farm_id: Uuid, user_id: &str, id: Uuid) -> Result<()> {
    let tx = db.tenant(farm_id).await?;
    require_role(&tx, user_id, "delete documents", |r| r >= Role::Manager).await?;
    let deleted = tx
        .query_opt(
            "DELETE FROM documents WHERE farm_id = $1 AND id = $2 RETURNING id",
            &[(&farm_id, Type::UUID), (&id, Type::UUID)],
        )
        .await?;
    if deleted.is_none() {
        return Err(Error::NotFound("document"));
    }
    tx.commit().await
}

/// What an embedding belongs to, besides document chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Memory(Uuid),
    ConversationSummary(Uuid),
}

/// Embeds `content` and stores it for `source` inside the caller's transaction (the memory
/// and distillation code call it where they create the memory or summary). Not metered here:
/// the caller's run pays; the tokens counted come back so it can settle.
pub async fn embed_and_store(
    tx: &TenantTx,
    embedder: &dyn Embedder,
    source: Source,
    content: &str,
) -> Result<u64> {
    let embedded = embedder.embed(&[content.to_string()]).await?;
    let vector = embedded
        .vectors
        .first()
        .ok_or_else(|| Error::ModelFailed("no vector".into()))?;
    let (memory_id, conversation_id) = match source {
        Source::Memory(id) => (Some(id), None),
        Source::ConversationSummary(id) => (None, Some(id)),
    };
    let farm_id = tx.farm_id();
    let model = embedder.model_id();
    tx.query(
        "INSERT INTO embeddings (farm_id, memory_id, conversation_id, content, content_hash,
                                 embedding_model, embedding)
         VALUES ($1, $2, $3, $4, $5, $6, $7::text::vector)",
        &[
            (&farm_id, Type::UUID),
            (&memory_id, Type::UUID),
            (&conversation_id, Type::UUID),
            (&content, Type::TEXT),
            (&content_hash(content), Type::TEXT),
            (&model, Type::TEXT),
            (&vector_text(vector), Type::TEXT),
        ],
    )
    .await?;
    Ok(embedded.input_tokens)
}

// ---------------------------------------------------------------- reembed sweep

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
    require_role(&tx, user_id, "re-embed knowledge", |r| r >= Role::Manager).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_bounded_overlapping_and_cover_the_text() {
        let words: Vec<String> = (0..1000).map(|i| format!("word{i}")).collect();
        let text = words.join(" ");
        let chunks = chunk(&text);
        assert!(chunks.len() > 5);
        for c in &chunks {
            assert!(c.chars().count() <= CHUNK_CHARS);
        }
        for w in &words {
            assert!(chunks.iter().any(|c| c.split(' ').any(|x| x == w)), "{w}");
        }
        for pair in chunks.windows(2) {
            let last = pair[0].split(' ').next_back().unwrap();
            assert!(pair[1].split(' ').any(|x| x == last), "overlap");
        }
        assert_eq!(chunk("short"), vec!["short".to_string()]);
        assert!(chunk("   ").is_empty());
        // No whitespace at all: still bounded.
        let long = "x".repeat(2000);
        assert!(
            chunk(&long)
                .iter()
                .all(|c| c.chars().count() <= CHUNK_CHARS)
        );
    }

    #[test]
    fn validation() {
        let ok = NewDocument {
            title: "t".into(),
            body: "b".into(),
        };
        assert!(validate(&ok).is_ok());
        for (title, body) in [("", "b"), ("t", " "), (&"t".repeat(301)[..], "b")] {
            let d = NewDocument {
                title: title.into(),
                body: body.into(),
            };
            assert!(matches!(validate(&d), Err(Error::Invalid(_))));
        }
    }

    #[test]
    fn vector_text_form() {
        assert_eq!(vector_text(&[0.5, -1.0]), "[0.5,-1]");
        assert_eq!(content_hash("a").len(), 64);
    }
}
