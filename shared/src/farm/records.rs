//! The farm's records of every type, with their provenance: `source` (`manual`, `ai_auto`,
//! `ai_draft`), the draft or run they came from, who confirmed them and when. Every member
//! reads them, viewers too.

use std::sync::LazyLock;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::{PageParams, invalid_if_any, page_of};
use crate::{
    db::{TenantTx, Type},
    error::{FieldError, Result},
    evidence::Cursor,
    membership,
    records::RecordType,
};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordEntry {
    pub record_type: RecordType,
    /// The row: its type's columns plus `id`, `occurred_on`, `source`, `draft_id`,
    /// `ai_run_id`, `created_by`, `confirmed_by`, `confirmed_at`, `created_at`.
    pub record: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordPage {
    pub records: Vec<RecordEntry>,
    /// Pass as `cursor` for the next (older) page; none on the last page.
    pub next_cursor: Option<String>,
}

/// One branch per record table (from [`RecordType::ALL`], so a new type cannot be missed),
/// each its own bounded keyset page, merged. `$1` farm, `$2` type, `$3`/`$4` occurred_on
/// from/to (inclusive), `$5`/`$6` cursor, `$7` limit + 1.
static PAGE_SQL: LazyLock<String> = LazyLock::new(|| {
    let branches: Vec<String> = RecordType::ALL
        .iter()
        .map(|t| {
            format!(
                "(SELECT '{t}'::text AS record_type, r.created_at, r.id, to_jsonb(r) AS record
                    FROM {table} r
                   WHERE r.farm_id = $1 AND ($2::text IS NULL OR $2 = '{t}')
                     AND ($3::date IS NULL OR r.occurred_on >= $3)
                     AND ($4::date IS NULL OR r.occurred_on <= $4)
                     AND ($5::timestamptz IS NULL OR (r.created_at, r.id) < ($5, $6))
                   ORDER BY r.created_at DESC, r.id DESC LIMIT $7)",
                t = t.as_str(),
                table = t.table()
            )
        })
        .collect();
    format!(
        "SELECT record_type, created_at, id, record FROM ({}) page
          ORDER BY created_at DESC, id DESC LIMIT $7",
        branches.join(" UNION ALL ")
    )
});

/// A `YYYY-MM-DD` day exactly as the document's `format: date` allows ([`crate::rfc3339`]).
fn date(v: &str) -> Option<NaiveDate> {
    crate::rfc3339::full_date(v)
}

/// `GET /farms/{farm_id}/records?type=&from=&to=`: newest written first; `from`/`to` are
/// `YYYY-MM-DD` days (inclusive) of `occurred_on`.
#[tracing::instrument(skip(tx, param), fields(farm_id = %tx.farm_id()))]
pub async fn list<'a>(
    tx: &TenantTx,
    user_id: &str,
    param: impl Fn(&str) -> Option<&'a str>,
) -> Result<RecordPage> {
    membership::member_role(tx, user_id).await?;
    let mut errors = Vec::new();
    let page = PageParams::parse(&param, &mut errors);
    let record_type = param("type").and_then(|v| {
        let t = RecordType::parse(v);
        if t.is_none() {
            errors.push(FieldError::new(
                "type",
                format!(
                    "must be one of {}",
                    RecordType::ALL.map(|t| t.as_str()).join(", ")
                ),
            ));
        }
        t
    });
    let mut day = |field: &str| {
        param(field).and_then(|v| {
            let d = date(v);
            if d.is_none() {
                errors.push(FieldError::new(field, "must be a YYYY-MM-DD date"));
            }
            d
        })
    };
    let (from, to) = (day("from"), day("to"));
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        errors.push(FieldError::new("to", "must not be before from"));
    }
    invalid_if_any(errors)?;
    let (at, id, fetch) = page.keyset();
    let farm_id = tx.farm_id();
    let type_name = record_type.map(RecordType::as_str);
    let rows = tx
        .query(
            &PAGE_SQL,
            &[
                (&farm_id, Type::UUID),
                (&type_name, Type::TEXT),
                (&from, Type::DATE),
                (&to, Type::DATE),
                (&at, Type::TIMESTAMPTZ),
                (&id, Type::UUID),
                (&fetch, Type::INT8),
            ],
        )
        .await?;
    let mut entries = Vec::with_capacity(rows.len());
    for r in &rows {
        let t: &str = r.get(0);
        let created_at: DateTime<Utc> = r.get(1);
        let id: Uuid = r.get(2);
        let record_type = RecordType::parse(t)
            .ok_or_else(|| crate::Error::unexpected(format!("record type {t}")))?;
        entries.push((
            created_at,
            id,
            RecordEntry {
                record_type,
                record: r.get(3),
            },
        ));
    }
    let (entries, next_cursor) = page_of(entries, page.limit, |(created_at, id, _)| Cursor {
        created_at: *created_at,
        id: *id,
    });
    Ok(RecordPage {
        records: entries.into_iter().map(|(_, _, e)| e).collect(),
        next_cursor,
    })
}
