//! Writing a validated record with its provenance.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::ValidatedPayload;
use crate::{
    db::{TenantTx, Type},
    error::Result,
};

/// Where a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Manual,
    AiAuto,
    AiDraft,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Manual => "manual",
            Source::AiAuto => "ai_auto",
            Source::AiDraft => "ai_draft",
        }
    }
}

/// Who and what produced a record.
#[derive(Debug, Clone)]
pub struct Provenance<'a> {
    pub source: Source,
    pub created_by: &'a str,
    pub ai_run_id: Option<Uuid>,
    pub draft_id: Option<Uuid>,
    pub confirmed_by: Option<&'a str>,
}

/// Writes one record of the payload's record type from a payload that passed
/// [`validate_payload`](super::validate_payload); returns the stored row as JSON. The record's columns come from the payload through
/// `jsonb_populate_record`, so the database's own types and CHECKs apply; provenance is filled
/// here, never from payload.
pub async fn insert_record(
    tx: &TenantTx,
    payload: &ValidatedPayload,
    provenance: &Provenance<'_>,
) -> Result<Value> {
    let record_type = payload.record_type();
    let columns: Vec<&str> = record_type
        .fields()
        .iter()
        .map(|f| f.name)
        .filter(|name| payload.get(name).is_some())
        .collect();
    let list = columns.join(", ");
    let select = columns
        .iter()
        .map(|c| format!("p.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "INSERT INTO {table} (farm_id, source, created_by, ai_run_id, draft_id, confirmed_by, confirmed_at, {list})
         SELECT $1, $2, $3, $4, $5, $6, CASE WHEN $6 IS NULL THEN NULL ELSE now() END, {select}
           FROM jsonb_populate_record(NULL::{table}, $7) AS p
         RETURNING to_jsonb({table}.*)",
        table = record_type.table(),
    );
    let farm_id = tx.farm_id();
    let payload = payload.to_value();
    let row = tx
        .query_one(
            &sql,
            &[
                (&farm_id, Type::UUID),
                (&provenance.source.as_str(), Type::TEXT),
                (&provenance.created_by, Type::TEXT),
                (&provenance.ai_run_id, Type::UUID),
                (&provenance.draft_id, Type::UUID),
                (&provenance.confirmed_by, Type::TEXT),
                (&payload, Type::JSONB),
            ],
        )
        .await?;
    Ok(row.get(0))
}
