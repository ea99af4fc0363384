//! Adding and deleting documents.

use serde::{Deserialize, Serialize};
use tokio_postgres::types::Type;
use uuid::Uuid;

use super::{
    BODY_MAX, chunk, content_hash,
    embedding::{embed_metered, open_embedding},
    vector_text,
};
use crate::{
    credits::{Feature, RunEnd},
    db::Db,
    embed::Embedder,
    error::{Error, FieldError, Result},
    membership::{Role, require_role},
    text::{Title, TitleKind},
};

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

/// The title ([`Title::parse`]: trimmed, 1 to 300 characters) and the body (not blank, at most
/// [`BODY_MAX`] characters); 422 naming each bad field. Returns the parsed title.
pub(super) fn validate(doc: &NewDocument) -> Result<Title> {
    let mut errors = Vec::new();
    let title = Title::parse(TitleKind::Document, &doc.title)
        .map_err(|e| errors.push(e))
        .ok();
    let b = doc.body.trim().chars().count();
    if b == 0 || doc.body.chars().count() > BODY_MAX {
        errors.push(FieldError::new(
            "body",
            format!("1 to {BODY_MAX} characters"),
        ));
    }
    match title {
        Some(title) if errors.is_empty() => Ok(title),
        _ => Err(Error::Invalid(errors)),
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
    let title = validate(doc)?;
    let chunks = chunk(&doc.body);
    let model = embedder.model_id().to_string();
    let tx = db.tenant(farm_id).await?;
    require_role(&tx, user_id, "add documents", Role::may_add_documents).await?;
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
                (&title.as_str(), Type::TEXT),
                (&doc.body, Type::TEXT),
                (&user_id, Type::TEXT),
            ],
        )
        .await?
        .get(0);
    let indexes: Vec<i32> = (0..).take(chunks.len()).collect();
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
    require_role(&tx, user_id, "delete documents", Role::may_manage_knowledge).await?;
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
