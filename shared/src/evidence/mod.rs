//! Evidence: the audit trail a farm owner or an auditor reads weeks later.
//!
//! A page of the farm's AI runs, newest first, with keyset pagination (an opaque cursor) and
//! filters; each run carries its ledger legs matched to it (reserved, charged, refunded,
//! expired), the drafts it created with their decisions, its recommendations, evals and
//! feedback. A page costs six statements whatever its size and however long the farm's
//! history (the page with every child; the farm's latest ledger checkpoint; the ledger rows
//! after it with the balance; the latest governance acts; the latest alerts; the evidence
//! chain's head and checkpoint), never one per run. Only `verify_chain=true` adds a pass over
//! the farm's whole chain ([`chain_status`]). Rendered as JSON, as a
//! self-contained HTML page ([`html`]) or as CSV ([`csv`]).

pub mod chain;
pub mod chain_status;
pub mod csv;
pub mod export;
pub mod html;
pub mod kms;
pub mod signing;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::{
    credits::{self, LedgerAudit},
    db::{TenantTx, Type},
    drafts::{DRAFT_COLUMNS, Draft},
    error::{Error, Result},
};

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

/// The page statement (public so tests can EXPLAIN it with the same parameters).
pub const PAGE_SQL: &str = include_str!("page.sql");
/// The farm ledger statement of [`farm_ledger`] (public so tests can EXPLAIN it).
pub const LEDGER_SQL: &str = include_str!("ledger.sql");
/// Run right before [`LEDGER_SQL`] (transaction-local). The rows after a checkpoint are found
/// by an index range scan whatever the planner guesses, never a sequential scan of the whole
/// ledger: its estimate of `id > through_id` assumes the farm's rows spread evenly over the
/// table. The checkpoint policy (reconcile-credits: by rows, and by age for quiet farms) keeps
/// the rows after any farm's checkpoint a recent slice of the ledger.
pub const LEDGER_STEER_SQL: &str = "SELECT set_config('enable_seqscan', 'off', true),
        set_config('enable_bitmapscan', 'off', true), set_config('jit', 'off', true)";
const LEDGER_RESTORE_SQL: &str = "SELECT set_config('enable_seqscan', 'on', true),
        set_config('enable_bitmapscan', 'on', true)";

// ---------------------------------------------------------------- the query (pure parsing)

/// Which runs, validated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EvidenceQuery {
    pub feature: Option<String>,
    pub status: Option<String>,
    /// Inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive.
    pub to: Option<DateTime<Utc>>,
    pub cursor: Option<Cursor>,
    pub limit: i64,
    /// Re-derive the evidence chain from the live rows (`verify_chain=true`; [`chain_status`]).
    pub verify_chain: bool,
}

const FEATURES: [&str; 4] = ["chat", "embed", "distill", "reembed"];
const RUN_STATUSES: [&str; 4] = ["reserved", "succeeded", "failed", "expired"];

impl EvidenceQuery {
    /// From the query string: `feature`, `status`, `from`, `to` (RFC 3339 or `YYYY-MM-DD`;
    /// a bare `to` date includes that whole day), `cursor`, `limit` (1..=200, default 50),
    /// `verify_chain` (`true` or `false`, default false).
    /// Every bad value is a 422 naming its field.
    pub fn parse<'a>(param: impl Fn(&str) -> Option<&'a str>) -> Result<EvidenceQuery> {
        let mut errors = Vec::new();
        let mut q = EvidenceQuery {
            limit: DEFAULT_LIMIT,
            ..Default::default()
        };
        let one_of = |field: &str, allowed: &[&str], errors: &mut Vec<_>| -> Option<String> {
            let v = param(field)?;
            if allowed.contains(&v) {
                Some(v.to_string())
            } else {
                errors.push(crate::error::FieldError::new(
                    field,
                    format!("must be one of {}", allowed.join(", ")),
                ));
                None
            }
        };
        q.feature = one_of("feature", &FEATURES, &mut errors);
        q.status = one_of("status", &RUN_STATUSES, &mut errors);
        for (field, end_of_day) in [("from", false), ("to", true)] {
            if let Some(v) = param(field) {
                match parse_instant(v, end_of_day) {
                    Some(t) if field == "from" => q.from = Some(t),
                    Some(t) => q.to = Some(t),
                    None => errors.push(crate::error::FieldError::new(
                        field,
                        "must be an RFC 3339 time or a YYYY-MM-DD date",
                    )),
                }
            }
        }
        if let Some(v) = param("limit") {
            match v.parse::<i64>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => q.limit = n,
                _ => errors.push(crate::error::FieldError::new(
                    "limit",
                    format!("must be an integer from 1 to {MAX_LIMIT}"),
                )),
            }
        }
        if let Some(v) = param("cursor") {
            match Cursor::decode(v) {
                Some(c) => q.cursor = Some(c),
                None => errors.push(crate::error::FieldError::new(
                    "cursor",
                    "is not a cursor this API returned",
                )),
            }
        }
        match param("verify_chain") {
            None | Some("false") => {}
            Some("true") => q.verify_chain = true,
            Some(_) => errors.push(crate::error::FieldError::new(
                "verify_chain",
                "must be true or false",
            )),
        }
        if let (Some(f), Some(t)) = (q.from, q.to)
            && f >= t
        {
            errors.push(crate::error::FieldError::new("to", "must be after from"));
        }
        if errors.is_empty() {
            Ok(q)
        } else {
            Err(Error::Invalid(errors))
        }
    }
}

/// An RFC 3339 `date-time`, or a `full-date` (midnight UTC; the next midnight for
/// `end_of_day`): exactly the document's `anyOf: [date-time, date]` ([`crate::rfc3339`]).
fn parse_instant(v: &str, end_of_day: bool) -> Option<DateTime<Utc>> {
    if let Some(t) = crate::rfc3339::date_time(v) {
        return Some(t);
    }
    let d = crate::rfc3339::full_date(v)?;
    let d = if end_of_day { d.succ_opt()? } else { d };
    Some(d.and_hms_opt(0, 0, 0)?.and_utc())
}

/// The position after the last run of a page: its `(created_at, id)`. Opaque to clients
/// (hex of `micros:uuid`); only what [`Cursor::encode`] produced decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

impl Cursor {
    pub fn encode(&self) -> String {
        hex::encode(format!(
            "{}:{}",
            self.created_at.timestamp_micros(),
            self.id.simple()
        ))
    }

    pub fn decode(s: &str) -> Option<Cursor> {
        if s.len() > 200 {
            return None;
        }
        let text = String::from_utf8(hex::decode(s).ok()?).ok()?;
        let (micros, id) = text.split_once(':')?;
        Some(Cursor {
            created_at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            id: Uuid::parse_str(id).ok()?,
        })
    }
}

// ---------------------------------------------------------------- what a page holds

/// A run's ledger legs, matched to it by `ai_run_id`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MatchedLegs {
    /// Held for the run: its `reserve` (hold) legs added up, as a positive amount. A run holds
    /// before each model call that needs more, so it may have several.
    pub reserved: i64,
    /// How many hold legs it has (at least 1).
    pub holds: i64,
    /// What the run actually cost: reserved minus the settle refund (0 if expired or open).
    pub charged: i64,
    /// Given back at settlement (the `settle` leg).
    pub refunded: i64,
    /// Given back because the run never settled (the `expire` leg).
    pub expired: i64,
    /// Still held: reserved, not yet settled nor expired.
    pub open: i64,
    /// The legs agree with the run row (reserved and charged amounts, closed iff finished).
    pub consistent: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leg {
    pub id: i64,
    pub entry_type: String,
    pub delta: i64,
    pub balance_after: i64,
    pub actor: Option<String>,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Matches legs to amounts (pure). `run_reserved`/`run_charged`/`run_status` are the run row's.
pub fn match_legs(
    legs: &[Leg],
    run_reserved: i64,
    run_charged: Option<i64>,
    run_status: &str,
) -> MatchedLegs {
    let sum = |t: &str| -> i64 {
        legs.iter()
            .filter(|l| l.entry_type == t)
            .map(|l| l.delta)
            .sum()
    };
    let count = |t: &str| legs.iter().filter(|l| l.entry_type == t).count();
    let reserved = -sum("reserve");
    let refunded = sum("settle");
    let expired = sum("expire");
    let closed = count("settle") + count("expire");
    let charged = if count("settle") == 1 {
        reserved - refunded
    } else {
        0
    };
    let open = if closed == 0 { reserved } else { 0 };
    let consistent = count("reserve") >= 1
        && closed <= 1
        && legs
            .iter()
            .all(|l| ["reserve", "settle", "expire"].contains(&l.entry_type.as_str()))
        && reserved == run_reserved
        && match run_status {
            "reserved" => closed == 0 && run_charged.is_none(),
            "expired" => count("expire") == 1 && expired == reserved && run_charged == Some(0),
            _ => count("settle") == 1 && run_charged == Some(charged),
        };
    MatchedLegs {
        reserved,
        holds: count("reserve") as i64,
        charged,
        refunded,
        expired,
        open,
        consistent,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DraftEvidence {
    pub id: Uuid,
    pub record_type: String,
    pub status: String,
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
    pub status: String,
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
    pub status: String,
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

/// The whole farm's ledger, by leg type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FarmTotals {
    pub granted: i64,
    pub adjusted: i64,
    pub reserved: i64,
    pub refunded: i64,
    pub expired: i64,
    /// Credits taken from lots that expired unspent (`expire_grant` legs).
    pub grants_expired: i64,
    /// Reservations not yet settled nor expired.
    pub open: i64,
    /// reserved - refunded - expired - open: what the farm's runs actually cost.
    pub charged: i64,
    pub ledger_entries: i64,
    /// granted + adjusted - grants_expired - charged - open: must equal the balance.
    pub expected_balance: i64,
}

/// The filters a page was read with (echoed so a reader knows what they are looking at).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Filters {
    pub feature: Option<String>,
    pub status: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

impl Filters {
    /// `feature=..&status=..&from=..&to=..` (only the ones set); values are URL-safe.
    pub fn query_string(&self) -> String {
        let ts = |t: &DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        [
            self.feature.as_ref().map(|v| format!("feature={v}")),
            self.status.as_ref().map(|v| format!("status={v}")),
            self.from.as_ref().map(|t| format!("from={}", ts(t))),
            self.to.as_ref().map(|t| format!("to={}", ts(t))),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("&")
    }
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
        let legs: Vec<Leg> = from_json(row.get(15))?;
        let status: String = row.get(4);
        let credits_reserved: i64 = row.get(5);
        let credits_charged: Option<i64> = row.get(6);
        let matched = match_legs(&legs, credits_reserved, credits_charged, &status);
        runs.push(RunEvidence {
            id: row.get(0),
            feature: row.get(1),
            model: row.get(2),
            user_id: row.get(3),
            status,
            credits_reserved,
            credits_charged,
            input_tokens: row.get(7),
            output_tokens: row.get(8),
            latency_ms: row.get(9),
            request_summary: row.get(10),
            response_summary: row.get(11),
            error: row.get(12),
            created_at: row.get(13),
            finished_at: row.get(14),
            matched,
            legs,
            drafts: from_json(row.get(16))?,
            recommendations: from_json(row.get(17))?,
            evals: from_json(row.get(18))?,
            feedback: from_json(row.get(19))?,
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

/// The farm's ledger totals by leg type and its invariant, in two short statements: the
/// latest ledger checkpoint (`credits::checkpoint_ledger`, taken by the reconcile-credits job),
/// then the rows written after it, so the cost follows the rows since the checkpoint, not the
/// farm's history. The operator's full re-sum is [`credits::audit_ledger`].
pub async fn farm_ledger(tx: &TenantTx) -> Result<(FarmTotals, LedgerAudit)> {
    let farm_id = tx.farm_id();
    let cp = tx
        .query_opt(
            "SELECT through_id, created_at, entries, sum_delta, negative_balances, granted,
                    adjusted, reserved, refunded, expired, balance_after, grants_expired
               FROM credit_ledger_checkpoints WHERE farm_id = $1
              ORDER BY through_id DESC LIMIT 1",
            &[(&farm_id, Type::UUID)],
        )
        .await?;
    let through_id: i64 = cp.as_ref().map_or(0, |r| r.get(0));
    // steer, sum the tail, restore: one round trip (pipelined)
    let cp_balance: Option<i64> = cp.as_ref().map(|r| r.get(10));
    let params: [crate::db::Param<'_>; 3] = [
        (&farm_id, Type::UUID),
        (&through_id, Type::INT8),
        (&cp_balance, Type::INT8),
    ];
    let (steered, row, restored) = futures::join!(
        tx.query(LEDGER_STEER_SQL, &[]),
        tx.query_opt(LEDGER_SQL, &params),
        tx.query(LEDGER_RESTORE_SQL, &[])
    );
    steered?;
    restored?;
    let row = row?.ok_or(Error::NotFound("farm"))?;
    // [sum_delta, entries, negative_balances, granted, adjusted, reserved, refunded, expired,
    //  grants_expired]
    let tail: [i64; 9] = std::array::from_fn(|i| row.get(2 + i));
    let folded: [i64; 9] = match &cp {
        Some(c) => [3, 2, 4, 5, 6, 7, 8, 9, 11].map(|i| c.get::<_, i64>(i)),
        None => [0; 9],
    };
    let [
        sum_delta,
        entries,
        negative,
        granted,
        adjusted,
        reserved,
        refunded,
        expired,
        grants_expired,
    ] = std::array::from_fn(|i| folded[i] + tail[i]);
    let open: i64 = row.get(11);
    let charged = reserved - refunded - expired - open;
    let totals = FarmTotals {
        granted,
        adjusted,
        reserved,
        refunded,
        expired,
        grants_expired,
        open,
        charged,
        ledger_entries: entries,
        expected_balance: granted + adjusted - grants_expired - charged - open,
    };
    let checkpoint = cp.map(|c| credits::CheckpointUse {
        through_id,
        taken_at: c.get(1),
        entries_after: tail[1],
        verified: None,
    });
    let audit = credits::audit_of(
        farm_id,
        [row.get(0), row.get(1), sum_delta, entries, negative],
        credits::AuditMethod::Checkpoint,
        checkpoint,
    );
    Ok((totals, audit))
}

// ---------------------------------------------------------------- credits statement

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CreditStatement {
    pub farm_id: Uuid,
    pub balance: i64,
    /// The most recent ledger entries, newest first.
    pub entries: Vec<LedgerEntry>,
    pub totals: FarmTotals,
    /// `credit_balance = last balance_after = sum(delta)` and no negative balance, checked now.
    pub invariant: LedgerAudit,
    /// The farm's credit lots (open ones first, in spend order): where the balance sits.
    pub lots: Vec<credits::Lot>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerEntry {
    pub id: i64,
    pub entry_type: String,
    pub delta: i64,
    pub balance_after: i64,
    pub ai_run_id: Option<Uuid>,
    pub actor: Option<String>,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The lot a grant, an adjustment or an `expire_grant` leg belongs to.
    pub lot_id: Option<i64>,
}

pub const CREDIT_ENTRIES: i64 = 50;

/// Balance, the latest [`CREDIT_ENTRIES`] ledger entries, totals and the invariant check.
pub async fn credit_statement(tx: &TenantTx) -> Result<CreditStatement> {
    let farm_id = tx.farm_id();
    let rows = tx
        .query(
            "SELECT id, entry_type, delta, balance_after, ai_run_id, actor, reason, created_at,
                    lot_id
               FROM credit_ledger WHERE farm_id = $1 ORDER BY id DESC LIMIT $2",
            &[(&farm_id, Type::UUID), (&CREDIT_ENTRIES, Type::INT8)],
        )
        .await?;
    let entries = rows
        .iter()
        .map(|r| LedgerEntry {
            id: r.get(0),
            entry_type: r.get(1),
            delta: r.get(2),
            balance_after: r.get(3),
            ai_run_id: r.get(4),
            actor: r.get(5),
            reason: r.get(6),
            created_at: r.get(7),
            lot_id: r.get(8),
        })
        .collect();
    let (totals, invariant) = farm_ledger(tx).await?;
    let lots = credits::list_lots(tx).await?;
    Ok(CreditStatement {
        farm_id,
        balance: invariant.credit_balance,
        entries,
        totals,
        invariant,
        lots,
    })
}

// ---------------------------------------------------------------- drafts list

pub const DRAFT_STATUSES: [&str; 3] = ["pending", "confirmed", "discarded"];
pub const DRAFT_LIST_LIMIT: i64 = 200;

/// `status` from the query string: `None` = every status; an unknown one is a 422.
pub fn parse_draft_status(v: Option<&str>) -> Result<Option<&'static str>> {
    match v {
        None => Ok(None),
        Some(s) => DRAFT_STATUSES
            .iter()
            .find(|d| **d == s)
            .map(|d| Some(*d))
            .ok_or_else(|| {
                Error::invalid("status", "must be one of pending, confirmed, discarded")
            }),
    }
}

/// The farm's drafts (newest first, at most [`DRAFT_LIST_LIMIT`]), optionally of one status.
pub async fn list_drafts(tx: &TenantTx, status: Option<&str>) -> Result<Vec<Draft>> {
    let farm_id = tx.farm_id();
    let rows = tx
        .query(
            &format!(
                "SELECT {DRAFT_COLUMNS} FROM assistant_drafts
                  WHERE farm_id = $1 AND ($2::text IS NULL OR status = $2)
                  ORDER BY created_at DESC, id DESC LIMIT $3"
            ),
            &[
                (&farm_id, Type::UUID),
                (&status, Type::TEXT),
                (&DRAFT_LIST_LIMIT, Type::INT8),
            ],
        )
        .await?;
    rows.iter().map(Draft::from_row).collect()
}

// ---------------------------------------------------------------- recording helpers

/// Stores a rule-based eval of a run (what the chat turn records).
pub async fn record_eval(
    tx: &TenantTx,
    run_id: Uuid,
    name: &str,
    passed: bool,
    details: &Value,
) -> Result<Uuid> {
    let farm_id = tx.farm_id();
    let row = tx
        .query_one(
            "INSERT INTO ai_evals (farm_id, ai_run_id, name, passed, details)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[
                (&farm_id, Type::UUID),
                (&run_id, Type::UUID),
                (&name, Type::TEXT),
                (&passed, Type::BOOL),
                (details, Type::JSONB),
            ],
        )
        .await?;
    Ok(row.get(0))
}

/// Stores a user's rating of a run (what the feedback route records).
pub async fn record_feedback(
    tx: &TenantTx,
    run_id: Uuid,
    user_id: &str,
    rating: &str,
    comment: Option<&str>,
) -> Result<Uuid> {
    let farm_id = tx.farm_id();
    let row = tx
        .query_one(
            "INSERT INTO ai_feedback (farm_id, ai_run_id, user_id, rating, comment)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[
                (&farm_id, Type::UUID),
                (&run_id, Type::UUID),
                (&user_id, Type::TEXT),
                (&rating, Type::TEXT),
                (&comment, Type::TEXT),
            ],
        )
        .await?;
    Ok(row.get(0))
}

/// Stores a recommendation a run made (pending until a manager decides).
pub async fn record_recommendation(
    tx: &TenantTx,
    run_id: Uuid,
    title: &str,
    body: &str,
    created_by: &str,
) -> Result<Uuid> {
    let farm_id = tx.farm_id();
    let row = tx
        .query_one(
            "INSERT INTO ai_recommendations (farm_id, ai_run_id, title, body, created_by)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[
                (&farm_id, Type::UUID),
                (&run_id, Type::UUID),
                (&title, Type::TEXT),
                (&body, Type::TEXT),
                (&created_by, Type::TEXT),
            ],
        )
        .await?;
    Ok(row.get(0))
}

// ---------------------------------------------------------------- content negotiation (pure)

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Html,
    Csv,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Html => "text/html; charset=utf-8",
            Format::Csv => "text/csv; charset=utf-8",
        }
    }
}

/// The best format for an `Accept` header: highest q among the ones we serve, the earliest
/// listed on a tie; JSON when there is no header, `*/*`, or nothing we serve.
pub fn negotiate(accept: Option<&str>) -> Result<Format> {
    let accept = match accept {
        Some(a) if !a.trim().is_empty() => a,
        _ => return Ok(Format::Json),
    };
    let mut best: Option<(f32, Format)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|v| v.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let format = match media.as_str() {
            "application/json" | "application/*" | "*/*" => Format::Json,
            "text/html" | "application/xhtml+xml" | "text/*" => Format::Html,
            "text/csv" => Format::Csv,
            _ => continue,
        };
        if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, format));
        }
    }
    best.map(|(_, f)| f).ok_or(Error::NotAcceptable(OFFERED))
}

/// The representations `GET /farms/{farm_id}/evidence` offers, for the 406 message.
pub const OFFERED: &str = "application/json, text/html, text/csv";

#[cfg(test)]
mod tests {
    use super::*;

    fn leg(entry_type: &str, delta: i64) -> Leg {
        Leg {
            id: 1,
            entry_type: entry_type.into(),
            delta,
            balance_after: 0,
            actor: None,
            reason: None,
            created_at: Utc::now(),
        }
    }

    type LegCase = (
        Vec<Leg>,
        i64,
        Option<i64>,
        &'static str,
        (i64, i64, i64, i64, i64, bool),
    );

    #[test]
    fn legs_match_to_amounts() {
        // (legs, run reserved, run charged, run status) -> (reserved, charged, refunded, expired, open, consistent)
        let cases: Vec<LegCase> = vec![
            (
                vec![leg("reserve", -10), leg("settle", 7)],
                10,
                Some(3),
                "succeeded",
                (10, 3, 7, 0, 0, true),
            ),
            (
                vec![leg("reserve", -10), leg("settle", 10)],
                10,
                Some(0),
                "failed",
                (10, 0, 10, 0, 0, true),
            ),
            (
                vec![leg("reserve", -10), leg("expire", 10)],
                10,
                Some(0),
                "expired",
                (10, 0, 0, 10, 0, true),
            ),
            (
                vec![leg("reserve", -10)],
                10,
                None,
                "reserved",
                (10, 0, 0, 0, 10, true),
            ),
            // the run says 4 was charged, the ledger says 3: flagged
            (
                vec![leg("reserve", -10), leg("settle", 7)],
                10,
                Some(4),
                "succeeded",
                (10, 3, 7, 0, 0, false),
            ),
            // no legs at all for a run: flagged
            (vec![], 10, None, "reserved", (0, 0, 0, 0, 0, false)),
        ];
        for (legs, reserved, charged, status, expected) in cases {
            let m = match_legs(&legs, reserved, charged, status);
            assert_eq!(
                (
                    m.reserved,
                    m.charged,
                    m.refunded,
                    m.expired,
                    m.open,
                    m.consistent
                ),
                expected,
                "{status} {legs:?}"
            );
        }
    }

    #[test]
    fn accept_header_picks_the_format() {
        let cases = [
            (None, Ok(Format::Json)),
            (Some("*/*"), Ok(Format::Json)),
            (Some("application/json"), Ok(Format::Json)),
            (Some("text/html"), Ok(Format::Html)),
            (
                Some("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
                Ok(Format::Html),
            ),
            (Some("text/csv"), Ok(Format::Csv)),
            (Some("text/csv;q=0.5, application/json"), Ok(Format::Json)),
            (Some("application/json;q=0.1, text/csv"), Ok(Format::Csv)),
            (Some("TEXT/CSV"), Ok(Format::Csv)),
            (Some("image/png"), Err(406)),
            (Some("text/html;q=0"), Err(406)),
            (Some("text/html;q=0, */*"), Ok(Format::Json)),
            (Some(""), Ok(Format::Json)),
        ];
        for (accept, expected) in cases {
            let got = negotiate(accept).map_err(|e| e.status());
            assert_eq!(got, expected, "{accept:?}");
        }
    }

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = Cursor {
            created_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            id: Uuid::new_v4(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        for bad in [
            "",
            "zz",
            "00",
            &hex::encode("x:y"),
            &hex::encode("1:notauuid"),
        ] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn query_parsing_validates_every_field() {
        let parse = |pairs: &[(&'static str, &'static str)]| {
            let pairs = pairs.to_vec();
            EvidenceQuery::parse(move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| *v))
        };
        let q = parse(&[]).unwrap();
        assert_eq!(q.limit, DEFAULT_LIMIT);
        let q = parse(&[
            ("feature", "chat"),
            ("status", "failed"),
            ("from", "2026-01-01"),
            ("to", "2026-01-31"),
            ("limit", "200"),
        ])
        .unwrap();
        assert_eq!(q.feature.as_deref(), Some("chat"));
        assert_eq!(q.status.as_deref(), Some("failed"));
        assert_eq!(q.to.unwrap().to_rfc3339(), "2026-02-01T00:00:00+00:00");
        assert_eq!(q.limit, 200);
        for (field, value) in [
            ("feature", "sql"),
            ("status", "done"),
            ("from", "yesterday"),
            ("limit", "0"),
            ("limit", "201"),
            ("limit", "ten"),
            ("cursor", "nope"),
        ] {
            match parse(&[(field, value)]) {
                Err(Error::Invalid(f)) => assert_eq!(f[0].field, field, "{field}={value}"),
                other => panic!("{field}={value}: {other:?}"),
            }
        }
        assert!(parse(&[("from", "2026-02-01"), ("to", "2026-01-01")]).is_err());
    }

    #[test]
    fn filters_round_trip_through_the_query_string() {
        let f = Filters {
            feature: Some("chat".into()),
            status: Some("failed".into()),
            from: DateTime::from_timestamp_micros(1_700_000_000_123_456),
            to: DateTime::from_timestamp_micros(1_800_000_000_000_000),
        };
        let qs = f.query_string();
        assert!(!qs.contains('+') && !qs.contains(' '), "{qs}");
        let pairs: Vec<(&str, &str)> = qs.split('&').filter_map(|p| p.split_once('=')).collect();
        let q =
            EvidenceQuery::parse(|k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| *v)).unwrap();
        assert_eq!(
            (q.feature, q.status, q.from, q.to),
            (f.feature, f.status, f.from, f.to)
        );
        assert_eq!(Filters::default().query_string(), "");
    }

    #[test]
    fn draft_status_filter() {
        assert_eq!(parse_draft_status(None).unwrap(), None);
        assert_eq!(
            parse_draft_status(Some("pending")).unwrap(),
            Some("pending")
        );
        assert_eq!(parse_draft_status(Some("bogus")).unwrap_err().status(), 422);
    }
}
