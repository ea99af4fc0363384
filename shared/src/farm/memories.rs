//! What the assistant remembers about the farm (owner and manager,
//! [`Role::may_manage_memories`]): the current memories, the superseded ones on request, and
//! forgetting one.
//!
//! Forgetting goes through the database's `forget_memory` (migration 0070): the memory, the
//! older versions it superseded and their embeddings go in one transaction, under the farm's
//! memory lock (the one the distill job holds while it writes), recorded in `farm_events`
//! (who, when, which ids; never the content). Retrieval ([`crate::rag::PgRetriever`],
//! [`crate::memory::relevant_memories`]) reads embeddings joined to their source, so a
//! forgotten memory can never be served again.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::{PageParams, invalid_if_any, page_of, refusal};
use crate::{
    db::{TenantTx, Type},
    error::{FieldError, Result},
    evidence::Cursor,
    membership::{self, Role},
};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Memory {
    pub id: Uuid,
    pub subject: Option<String>,
    pub content: String,
    /// Remembered since.
    pub since: DateTime<Utc>,
    /// The conversation it was distilled from (none once that conversation is gone).
    pub conversation_id: Option<Uuid>,
    /// The newer memory that replaced it (only with `include=superseded`).
    pub superseded_by: Option<Uuid>,
    pub superseded_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemoryPage {
    pub memories: Vec<Memory>,
    /// Pass as `cursor` for the next (older) page; none on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /farms/{farm_id}/memories[?include=superseded]`: newest first.
#[tracing::instrument(skip(tx, param), fields(farm_id = %tx.farm_id()))]
pub async fn list<'a>(
    tx: &TenantTx,
    user_id: &str,
    param: impl Fn(&str) -> Option<&'a str>,
) -> Result<MemoryPage> {
    membership::require_role(
        tx,
        user_id,
        "read the farm's memories",
        Role::may_manage_memories,
    )
    .await?;
    let mut errors = Vec::new();
    let page = PageParams::parse(&param, &mut errors);
    let superseded = match param("include") {
        None => false,
        Some("superseded") => true,
        Some(_) => {
            errors.push(FieldError::new("include", "must be superseded"));
            false
        }
    };
    invalid_if_any(errors)?;
    let (at, id, fetch) = page.keyset();
    let farm_id = tx.farm_id();
    let rows = tx
        .query(
            "SELECT id, subject, content, created_at, conversation_id, superseded_by, superseded_at
               FROM memories
              WHERE farm_id = $1 AND ($2 OR superseded_by IS NULL)
                AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4))
              ORDER BY created_at DESC, id DESC LIMIT $5",
            &[
                (&farm_id, Type::UUID),
                (&superseded, Type::BOOL),
                (&at, Type::TIMESTAMPTZ),
                (&id, Type::UUID),
                (&fetch, Type::INT8),
            ],
        )
        .await?;
    let all = rows
        .iter()
        .map(|r| Memory {
            id: r.get(0),
            subject: r.get(1),
            content: r.get(2),
            since: r.get(3),
            conversation_id: r.get(4),
            superseded_by: r.get(5),
            superseded_at: r.get(6),
        })
        .collect();
    let (memories, next_cursor) = page_of(all, page.limit, |m: &Memory| Cursor {
        created_at: m.since,
        id: m.id,
    });
    Ok(MemoryPage {
        memories,
        next_cursor,
    })
}

/// `DELETE /farms/{farm_id}/memories/{id}`: `{"forgotten": [ids], "embeddings_deleted": n}`.
#[tracing::instrument(skip(tx), fields(farm_id = %tx.farm_id()))]
pub async fn forget(tx: &TenantTx, user_id: &str, memory_id: Uuid) -> Result<Value> {
    membership::require_role(tx, user_id, "forget a memory", Role::may_manage_memories).await?;
    let row = tx
        .query_one(
            "SELECT forget_memory($1, $2)",
            &[(&user_id, Type::TEXT), (&memory_id, Type::UUID)],
        )
        .await
        .map_err(refusal)?;
    Ok(row.get(0))
}
