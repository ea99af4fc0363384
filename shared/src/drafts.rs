//! Drafts: what the AI proposed, held until a human confirms or discards it.
//!
//! Confirming locks the draft, validates the payload (the edited one if given, else the stored
//! one again: a stored payload is only JSON read back, and a record is written only from a
//! [`ValidatedPayload`]) with the record type's schema, writes the farm record with its provenance and marks the draft
//! confirmed, in one transaction. The schema refuses any second decision, and at most one
//! record can ever exist per draft (`UNIQUE (draft_id)` on every record table).

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::{
    db::{TenantTx, Type},
    error::{Error, Result},
    membership::Role,
    records::{self, Provenance, RecordType, Source, ValidatedPayload},
    text::{Note, Reason},
};

pub use crate::status::DraftStatus;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Draft {
    pub id: Uuid,
    pub farm_id: Uuid,
    pub ai_run_id: Option<Uuid>,
    pub record_type: RecordType,
    pub payload: Value,
    pub edited_payload: Option<Value>,
    pub summary: Option<String>,
    pub status: DraftStatus,
    pub created_by: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub decided_by: Option<String>,
    pub decided_at: Option<chrono::DateTime<chrono::Utc>>,
    pub decision_note: Option<String>,
    pub record_id: Option<Uuid>,
}

/// The columns [`Draft::from_row`] reads, by name.
pub const DRAFT_COLUMNS: &str = "id, farm_id, ai_run_id, record_type, payload, edited_payload, summary, status, \
     created_by, created_at, decided_by, decided_at, decision_note, record_id";

impl Draft {
    pub fn from_row(row: &Row) -> Result<Draft> {
        let record_type: String = row.get("record_type");
        Ok(Draft {
            id: row.get("id"),
            farm_id: row.get("farm_id"),
            ai_run_id: row.get("ai_run_id"),
            record_type: RecordType::parse(&record_type)
                .ok_or_else(|| Error::unexpected(format!("unknown record type {record_type}")))?,
            payload: row.get("payload"),
            edited_payload: row.get("edited_payload"),
            summary: row.get("summary"),
            status: row.try_get("status")?,
            created_by: row.get("created_by"),
            created_at: row.get("created_at"),
            decided_by: row.get("decided_by"),
            decided_at: row.get("decided_at"),
            decision_note: row.get("decision_note"),
            record_id: row.get("record_id"),
        })
    }
}

/// A proposal to hold for a human: a payload that passed [`records::validate_payload`] (its
/// record type is the draft's).
#[derive(Debug, Clone)]
pub struct NewDraft<'a> {
    pub ai_run_id: Option<Uuid>,
    pub payload: &'a ValidatedPayload,
    pub summary: Option<&'a str>,
    pub created_by: &'a str,
}

pub async fn create_draft(tx: &TenantTx, draft: &NewDraft<'_>) -> Result<Draft> {
    let farm_id = tx.farm_id();
    let payload = draft.payload.to_value();
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO assistant_drafts (farm_id, ai_run_id, record_type, payload, summary, created_by)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING {DRAFT_COLUMNS}"
            ),
            &[
                (&farm_id, Type::UUID),
                (&draft.ai_run_id, Type::UUID),
                (&draft.payload.record_type().as_str(), Type::TEXT),
                (&payload, Type::JSONB),
                (&draft.summary, Type::TEXT),
                (&draft.created_by, Type::TEXT),
            ],
        )
        .await?;
    Draft::from_row(&row)
}

/// Locks a draft of the tenant's farm for a decision; 404 if it is not the farm's.
async fn lock_draft(tx: &TenantTx, draft_id: Uuid) -> Result<Draft> {
    read_draft(tx, draft_id, " FOR UPDATE").await
}

async fn read_draft(tx: &TenantTx, draft_id: Uuid, lock: &str) -> Result<Draft> {
    let farm_id = tx.farm_id();
    let row = tx
        .query_opt(
            &format!(
                "SELECT {DRAFT_COLUMNS} FROM assistant_drafts WHERE farm_id = $1 AND id = $2{lock}"
            ),
            &[(&farm_id, Type::UUID), (&draft_id, Type::UUID)],
        )
        .await?
        .ok_or(Error::NotFound("draft"))?;
    Draft::from_row(&row)
}

fn authorize(role: Role, draft: &Draft) -> Result<()> {
    if role.may_decide_draft(draft.record_type) {
        Ok(())
    } else {
        Err(Error::Forbidden(format!(
            "a {} may not decide a {} draft",
            role.as_str(),
            draft.record_type
        )))
    }
}

fn must_be_pending(draft: &Draft) -> Result<()> {
    if draft.status == DraftStatus::Pending {
        Ok(())
    } else {
        Err(Error::Conflict {
            what: "draft",
            status: draft.status.as_str().into(),
        })
    }
}

/// Who decides, with which role, and why.
#[derive(Debug, Clone, Copy)]
pub struct Decider<'a> {
    pub user_id: &'a str,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Confirmed {
    pub draft: Draft,
    pub record: Value,
}

/// Confirms a pending draft: writes its record (from `edits` when given, validated with the
/// same schema) and marks the draft confirmed, with the note parsed by [`Note::parse`]
/// (trimmed; blank is none). Order of refusals: 404 (not this farm's), 403 (role),
/// 409 (already decided), 422 (note, then payload). Call inside the request's transaction
/// and commit after.
#[tracing::instrument(skip(tx, edits, note), fields(farm_id = %tx.farm_id(), draft_id = %draft_id))]
pub async fn confirm_draft(
    tx: &TenantTx,
    draft_id: Uuid,
    by: Decider<'_>,
    edits: Option<&Value>,
    note: Option<&str>,
    today: NaiveDate,
) -> Result<Confirmed> {
    let draft = lock_draft(tx, draft_id).await?;
    authorize(by.role, &draft)?;
    must_be_pending(&draft)?;
    let note = Note::parse(note)?;
    let payload =
        records::validate_payload(draft.record_type, edits.unwrap_or(&draft.payload), today)?;
    let record = records::insert_record(
        tx,
        &payload,
        &Provenance {
            source: Source::AiDraft,
            created_by: &draft.created_by,
            ai_run_id: draft.ai_run_id,
            draft_id: Some(draft.id),
            confirmed_by: Some(by.user_id),
        },
    )
    .await?;
    let record_id: Uuid = record
        .get("id")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::unexpected("inserted record has no id"))?;
    let edited = edits.map(|_| payload.into_value());
    let row = tx
        .query_one(
            &format!(
                "UPDATE assistant_drafts
                    SET status = 'confirmed', decided_by = $3, decided_at = now(), decision_note = $4,
                        edited_payload = $5, record_id = $6
                  WHERE farm_id = $1 AND id = $2 AND status = 'pending'
                 RETURNING {DRAFT_COLUMNS}"
            ),
            &[
                (&tx.farm_id(), Type::UUID),
                (&draft_id, Type::UUID),
                (&by.user_id, Type::TEXT),
                (&note.as_ref().map(Note::as_str), Type::TEXT),
                (&edited, Type::JSONB),
                (&record_id, Type::UUID),
            ],
        )
        .await?;
    Ok(Confirmed {
        draft: Draft::from_row(&row)?,
        record,
    })
}

/// Discards a pending draft with a reason ([`Reason::parse`]: trimmed, 1 to 500 characters).
/// Nothing is written. Same order of refusals as [`confirm_draft`]: 404, 403, 409, then 422
/// for the reason.
#[tracing::instrument(skip(tx, reason), fields(farm_id = %tx.farm_id(), draft_id = %draft_id))]
pub async fn discard_draft(
    tx: &TenantTx,
    draft_id: Uuid,
    by: Decider<'_>,
    reason: &str,
) -> Result<Draft> {
    let draft = lock_draft(tx, draft_id).await?;
    authorize(by.role, &draft)?;
    must_be_pending(&draft)?;
    let reason = Reason::parse(reason)?;
    let row = tx
        .query_one(
            &format!(
                "UPDATE assistant_drafts
                    SET status = 'discarded', decided_by = $3, decided_at = now(), decision_note = $4
                  WHERE farm_id = $1 AND id = $2 AND status = 'pending'
                 RETURNING {DRAFT_COLUMNS}"
            ),
            &[(&tx.farm_id(), Type::UUID), (&draft_id, Type::UUID), (&by.user_id, Type::TEXT), (&reason.as_str(), Type::TEXT)],
        )
        .await?;
    Draft::from_row(&row)
}

/// One draft of the tenant's farm.
pub async fn get_draft(tx: &TenantTx, draft_id: Uuid) -> Result<Draft> {
    read_draft(tx, draft_id, "").await
}
