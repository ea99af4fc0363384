//! One page of evidence: the run rows with every child, read in one statement, and the
//! page's totals.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{
    Cursor, EvidenceQuery, FarmTotals, Filters, Leg, MAX_LIMIT, MatchedLegs, chain_status,
    farm_ledger, match_legs,
};
use crate::{
    credits::LedgerAudit,
    db::{TenantTx, Type},
    error::{Error, Result},
    status::{DraftStatus, RecommendationStatus, RunStatus},
};

/// The page statement (public so tests can EXPLAIN it with the same parameters).
pub const PAGE_SQL: &str = include_str!("page.sql");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DraftEvidence {
    pub id: Uuid,
    pub record_type: String,
    pub status: DraftStatus,
    pub summary: Option<String>,
    /// What the AI proposed.
    pub payload: Value,
    /// What the human confirmed instead, when they edited it.
    pub edited_payload: Option<Value>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decision_note: Option<String>,
    /// The farm record the confirmation created.
    pub record_id: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecommendationEvidence {
    pub id: Uuid,
    pub title: String,
    pub body: String,
    pub status: RecommendationStatus,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decision_note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalEvidence {
    pub id: Uuid,
    pub name: String,
    pub passed: bool,
    pub details: Value,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackEvidence {
    pub id: Uuid,
    pub user_id: String,
    pub rating: String,
    pub comment: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunEvidence {
    pub id: Uuid,
    pub feature: String,
    pub model: String,
    /// Who asked (none for scheduled jobs).
    pub user_id: Option<String>,
    pub status: RunStatus,
    pub credits_reserved: i64,
    pub credits_charged: Option<i64>,
    pub input_tokens: Option<i32>,
    pub output_tokens: Option<i32>,
    pub latency_ms: Option<i32>,
    pub request_summary: Option<String>,
    pub response_summary: Option<String>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub matched: MatchedLegs,
    pub legs: Vec<Leg>,
    pub drafts: Vec<DraftEvidence>,
    pub recommendations: Vec<RecommendationEvidence>,
    pub evals: Vec<EvalEvidence>,
    pub feedback: Vec<FeedbackEvidence>,
}

/// The matched legs of the runs on this page, added up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PageTotals {
    pub runs: i64,
    pub reserved: i64,
    pub charged: i64,
    pub refunded: i64,
    pub expired: i64,
    pub open: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvidencePage {
    pub farm_id: Uuid,
    pub generated_at: DateTime<Utc>,
    pub filters: Filters,
    pub runs: Vec<RunEvidence>,
    /// Pass as `cursor` for the next (older) page; none on the last page.
    pub next_cursor: Option<String>,
    pub limit: i64,
    pub page_totals: PageTotals,
    pub farm_totals: FarmTotals,
    pub ledger: LedgerAudit,
    /// The farm's latest governance acts done through the API (autonomy changes, forgotten
    /// memories, membership changes), newest first, whatever the page's filters.
    pub farm_events: Vec<crate::farm::FarmEvent>,
    /// The farm's latest low-balance alerts (migration 0086), newest first, with when each was
    /// published (`sent_at`, none while it waits in the outbox), whatever the page's filters.
    pub credit_alerts: Vec<crate::credits::alerts::AlertEvidence>,
    /// The evidence chain's head and latest signed checkpoint, and whether the live rows still
    /// match them when the request asked (`verify_chain=true`; migration 0090).
    pub chain: chain_status::ChainStatus,
}

fn from_json<T: serde::de::DeserializeOwned>(v: Value) -> Result<T> {
    serde_json::from_value(v).map_err(|e| Error::unexpected(format!("evidence row: {e}")))
}

/// One page of the tenant farm's evidence: six statements, whatever the page size.
pub async fn evidence_page(tx: &TenantTx, q: &EvidenceQuery) -> Result<EvidencePage> {
    let farm_id = tx.farm_id();
    let limit = q.limit.clamp(1, MAX_LIMIT);
    let fetch = limit + 1;
    let cursor_at = q.cursor.map(|c| c.created_at);
    let cursor_id = q.cursor.map(|c| c.id);
    let rows = tx
        .query(
            PAGE_SQL,
            &[
                (&farm_id, Type::UUID),
                (&q.feature, Type::TEXT),
                (&q.status, Type::TEXT),
                (&q.from, Type::TIMESTAMPTZ),
                (&q.to, Type::TIMESTAMPTZ),
                (&cursor_at, Type::TIMESTAMPTZ),
                (&cursor_id, Type::UUID),
                (&fetch, Type::INT8),
            ],
        )
        .await?;
    let has_more = rows.len() as i64 > limit;
    let mut runs = Vec::with_capacity(rows.len().min(limit as usize));
    for row in rows.iter().take(limit as usize) {
        let legs: Vec<Leg> = from_json(row.get("legs"))?;
        let status: RunStatus = row.try_get("status")?;
        let credits_reserved: i64 = row.get("credits_reserved");
        let credits_charged: Option<i64> = row.get("credits_charged");
        let matched = match_legs(&legs, credits_reserved, credits_charged, status);
        runs.push(RunEvidence {
            id: row.get("id"),
            feature: row.get("feature"),
            model: row.get("model"),
            user_id: row.get("user_id"),
            status,
            credits_reserved,
            credits_charged,
            input_tokens: row.get("input_tokens"),
            output_tokens: row.get("output_tokens"),
            latency_ms: row.get("latency_ms"),
            request_summary: row.get("request_summary"),
            response_summary: row.get("response_summary"),
            error: row.get("error"),
            created_at: row.get("created_at"),
            finished_at: row.get("finished_at"),
            matched,
            legs,
            drafts: from_json(row.get("drafts"))?,
            recommendations: from_json(row.get("recommendations"))?,
            evals: from_json(row.get("evals"))?,
            feedback: from_json(row.get("feedback"))?,
        });
    }
    let next_cursor = match runs.last() {
        Some(last) if has_more => Some(
            Cursor {
                created_at: last.created_at,
                id: last.id,
            }
            .encode(),
        ),
        _ => None,
    };
    let page_totals = page_totals(&runs);
    let (farm_totals, ledger) = farm_ledger(tx).await?;
    let farm_events = crate::farm::recent_events(tx, crate::farm::EVENTS_IN_EVIDENCE).await?;
    let credit_alerts =
        crate::credits::alerts::recent_alerts(tx, crate::farm::EVENTS_IN_EVIDENCE).await?;
    let chain = chain_status::chain_status(tx, q.verify_chain).await?;
    Ok(EvidencePage {
        farm_id,
        generated_at: Utc::now(),
        filters: Filters {
            feature: q.feature.clone(),
            status: q.status.clone(),
            from: q.from,
            to: q.to,
        },
        runs,
        next_cursor,
        limit,
        page_totals,
        farm_totals,
        ledger,
        farm_events,
        credit_alerts,
        chain,
    })
}

/// Adds up a page (pure).
pub fn page_totals(runs: &[RunEvidence]) -> PageTotals {
    runs.iter().fold(PageTotals::default(), |mut t, r| {
        t.runs += 1;
        t.reserved += r.matched.reserved;
        t.charged += r.matched.charged;
        t.refunded += r.matched.refunded;
        t.expired += r.matched.expired;
        t.open += r.matched.open;
        t.input_tokens += i64::from(r.input_tokens.unwrap_or(0));
        t.output_tokens += i64::from(r.output_tokens.unwrap_or(0));
        t
    })
}
