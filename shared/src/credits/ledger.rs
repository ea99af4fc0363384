//! The operator's side of the ledger (grants, adjustments: the owner role only, migration
//! 0060) and the audits and checkpoints that prove it adds up.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::{
    db::{Db, TenantTx, Type},
    error::{Error, Result},
};

/// Adds credits as an operator's paid lot with no expiry (a purchase recorded by hand; for
/// categories, priorities, expiry and idempotency keys see [`super::lots::grant_lot`]).
/// Returns the new balance.
#[tracing::instrument(skip(tx), fields(farm_id = %tx.farm_id()))]
pub async fn grant_credits(tx: &TenantTx, amount: i64, actor: &str, reason: &str) -> Result<i64> {
    Ok(
        super::lots::grant_lot(tx, &super::lots::NewLot::operator(amount, actor, reason))
            .await?
            .balance,
    )
}

/// Corrects a balance up or down with a reason (`credit_adjust`): up is a new operator lot,
/// down is taken from the spendable lots in spend order; never below zero (422 if it would be).
#[tracing::instrument(skip(tx), fields(farm_id = %tx.farm_id()))]
pub async fn adjust_credits(tx: &TenantTx, delta: i64, actor: &str, reason: &str) -> Result<i64> {
    if delta == 0 {
        return Err(Error::invalid("delta", "an adjustment must not be zero"));
    }
    if reason.trim().is_empty() || reason.chars().count() > 500 {
        return Err(Error::invalid("reason", "must be 1 to 500 characters"));
    }
    let farm_id = tx.farm_id();
    let row = tx
        .query_opt(
            "SELECT balance FROM credit_adjust($1, $2, $3, $4)",
            &[
                (&farm_id, Type::UUID),
                (&delta, Type::INT8),
                (&actor, Type::TEXT),
                (&reason, Type::TEXT),
            ],
        )
        .await?;
    match row {
        Some(r) => Ok(r.get(0)),
        None => Err(Error::invalid(
            "delta",
            "the spendable balance cannot go below zero",
        )),
    }
}

/// Farms that hold reservations opened before `older_than` (ids only; no tenant needed).
pub async fn farms_with_open_reservations(db: &Db, older_than: DateTime<Utc>) -> Result<Vec<Uuid>> {
    let client = db.client().await?;
    let rows = client
        .query_typed(
            "SELECT farms_with_open_reservations($1)",
            &[(&older_than, Type::TIMESTAMPTZ)],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The ledger invariant for one farm, as read from the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerAudit {
    pub farm_id: Uuid,
    pub credit_balance: i64,
    pub last_balance_after: i64,
    pub sum_of_deltas: i64,
    pub entries: i64,
    pub negative_balances: i64,
    /// How the sums were read: every ledger row now, or the latest checkpoint plus the rows
    /// after it.
    pub method: AuditMethod,
    /// The farm's latest ledger checkpoint, if it has one.
    pub checkpoint: Option<CheckpointUse>,
    /// The farm's credit lots, checked by a full audit ([`audit_ledger`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lots: Option<LotsAudit>,
    pub holds: bool,
}

/// The lots side of a full audit: the balance is what the open lots hold, and every lot's
/// remaining is the sum of its moves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LotsAudit {
    pub remaining_in_open_lots: i64,
    /// Lots whose remaining differs from the sum of their moves (must be 0).
    pub lots_disagreeing_with_moves: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditMethod {
    /// Every ledger row of the farm summed by this audit ([`audit_ledger`]).
    Full,
    /// The latest checkpoint plus the rows written after it ([`crate::evidence::farm_ledger`]).
    Checkpoint,
}

/// A checkpoint as an audit used or checked it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointUse {
    /// The last ledger row the checkpoint folds in.
    pub through_id: i64,
    pub taken_at: DateTime<Utc>,
    /// Ledger rows written after it, summed by this audit.
    pub entries_after: i64,
    /// A full audit re-sums the rows the checkpoint covers: `Some(true)` when they agree.
    /// A checkpoint audit trusts it (`None`).
    pub verified: Option<bool>,
}

/// The invariant, from what an audit read (pure).
pub fn invariant_holds(
    credit_balance: i64,
    last_balance_after: i64,
    sum_of_deltas: i64,
    negative_balances: i64,
    checkpoint_verified: Option<bool>,
) -> bool {
    credit_balance == last_balance_after
        && credit_balance == sum_of_deltas
        && negative_balances == 0
        && checkpoint_verified != Some(false)
}

/// [`audit_ledger`]'s one statement: the balances, the rows' sums and counts, and the latest
/// checkpoint's agreement with the rows it covers.
const AUDIT_SQL: &str = include_str!("audit.sql");

/// The full audit (operators, `farmops audit`): sums every ledger row of the farm now and
/// checks `credit_balance = last balance_after = sum(delta)`, that no recorded balance was ever
/// negative, and that the farm's latest checkpoint agrees with the rows it covers. Reads the
/// whole ledger of the farm; the evidence and credits pages use
/// [`crate::evidence::farm_ledger`].
pub async fn audit_ledger(tx: &TenantTx) -> Result<LedgerAudit> {
    let farm_id = tx.farm_id();
    let row = tx
        .query_opt(AUDIT_SQL, &[(&farm_id, Type::UUID)])
        .await?
        .ok_or(Error::NotFound("farm"))?;
    let checkpoint = row
        .get::<_, Option<i64>>(5)
        .map(|through_id| CheckpointUse {
            through_id,
            taken_at: row.get(6),
            entries_after: row.get(7),
            verified: Some(row.get::<_, Option<bool>>(8).unwrap_or(false)),
        });
    let mut audit = audit_of(
        farm_id,
        [row.get(0), row.get(1), row.get(2), row.get(3), row.get(4)],
        AuditMethod::Full,
        checkpoint,
    );
    let lots = tx
        .query_one(
            "SELECT coalesce(sum(l.remaining) FILTER (WHERE l.closed_at IS NULL), 0)::bigint,
                    count(*) FILTER (WHERE l.remaining <> coalesce(m.moved, 0))
               FROM credit_lots l
               LEFT JOIN (SELECT lot_id, sum(delta) AS moved FROM credit_lot_moves
                           WHERE farm_id = $1 GROUP BY lot_id) m ON m.lot_id = l.id
              WHERE l.farm_id = $1",
            &[(&farm_id, Type::UUID)],
        )
        .await?;
    let lots = LotsAudit {
        remaining_in_open_lots: lots.get(0),
        lots_disagreeing_with_moves: lots.get(1),
    };
    audit.holds &= lots.remaining_in_open_lots == audit.credit_balance
        && lots.lots_disagreeing_with_moves == 0;
    audit.lots = Some(lots);
    Ok(audit)
}

/// `[credit_balance, last_balance_after, sum_of_deltas, entries, negative_balances]` read by
/// an audit, as a [`LedgerAudit`].
pub fn audit_of(
    farm_id: Uuid,
    [
        credit_balance,
        last_balance_after,
        sum_of_deltas,
        entries,
        negative_balances,
    ]: [i64; 5],
    method: AuditMethod,
    checkpoint: Option<CheckpointUse>,
) -> LedgerAudit {
    let verified = checkpoint.as_ref().and_then(|c| c.verified);
    LedgerAudit {
        farm_id,
        credit_balance,
        last_balance_after,
        sum_of_deltas,
        entries,
        negative_balances,
        method,
        holds: invariant_holds(
            credit_balance,
            last_balance_after,
            sum_of_deltas,
            negative_balances,
            verified,
        ),
        checkpoint,
        lots: None,
    }
}

/// Folds the tenant farm's ledger rows written since its last checkpoint into a new
/// checkpoint (computed by the database, `checkpoint_credit_ledger`); returns how many rows
/// it folded (0: nothing new). Briefly holds the farm's new ledger writers back while it sums.
pub async fn checkpoint_ledger(tx: &TenantTx) -> Result<i64> {
    let farm_id = tx.farm_id();
    let row = tx
        .query_one(
            "SELECT checkpoint_credit_ledger($1)",
            &[(&farm_id, Type::UUID)],
        )
        .await?;
    Ok(row.get(0))
}

/// Farms due a ledger checkpoint: at least `min_rows` rows past their last checkpoint, or any
/// new row when their last checkpoint is older than `max_age` (ids only; no tenant needed).
pub async fn farms_due_ledger_checkpoint(
    db: &Db,
    min_rows: i64,
    max_age: std::time::Duration,
) -> Result<Vec<Uuid>> {
    let client = db.client().await?;
    let secs = max_age.as_secs_f64();
    let rows = client
        .query_typed(
            "SELECT farms_due_ledger_checkpoint($1, make_interval(secs => $2))",
            &[(&min_rows, Type::INT8), (&secs, Type::FLOAT8)],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
