//! The farm's ledger: its totals by leg type and invariant from the latest checkpoint and
//! the rows after it, and the credits statement.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::{
    credits::{self, LedgerAudit},
    db::{TenantTx, Type},
    error::{Error, Result},
};

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
    let through_id: i64 = cp.as_ref().map_or(0, |r| r.get("through_id"));
    // steer, sum the tail, restore: one round trip (pipelined)
    let cp_balance: Option<i64> = cp.as_ref().map(|r| r.get("balance_after"));
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
    // the sums the tail and the checkpoint both have, under the same names
    const SUMS: [&str; 9] = [
        "sum_delta",
        "entries",
        "negative_balances",
        "granted",
        "adjusted",
        "reserved",
        "refunded",
        "expired",
        "grants_expired",
    ];
    let tail: [i64; 9] = SUMS.map(|c| row.get(c));
    let folded: [i64; 9] = match &cp {
        Some(c) => SUMS.map(|name| c.get::<_, i64>(name)),
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
    let open: i64 = row.get("open");
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
        taken_at: c.get("created_at"),
        entries_after: tail[1],
        verified: None,
    });
    let audit = credits::audit_of(
        farm_id,
        [
            row.get("credit_balance"),
            row.get("last_balance_after"),
            sum_delta,
            entries,
            negative,
        ],
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
            id: r.get("id"),
            entry_type: r.get("entry_type"),
            delta: r.get("delta"),
            balance_after: r.get("balance_after"),
            ai_run_id: r.get("ai_run_id"),
            actor: r.get("actor"),
            reason: r.get("reason"),
            created_at: r.get("created_at"),
            lot_id: r.get("lot_id"),
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
