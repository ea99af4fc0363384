//! The final database as the checker reads it: per farm, per run, per lot, per draft. Read as
//! the superuser (no row-level security) in one repeatable-read transaction.

use std::collections::HashMap;

use anyhow::Result;
use farmops::status::{DraftStatus, RunStatus};
use uuid::Uuid;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FarmState {
    /// `farms.credit_balance`.
    pub balance: i64,
    /// `balance_after` of the farm's last ledger row.
    pub last_balance_after: Option<i64>,
    pub ledger_sum: i64,
    pub min_balance_after: Option<i64>,
    /// Sum of `remaining` over the farm's open lots.
    pub live_lots: i64,
    /// The smallest `remaining` of any lot (never negative).
    pub min_lot_remaining: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunState {
    pub farm: Uuid,
    /// `request_summary`: the tag of the operation that opened it.
    pub tag: Option<String>,
    pub status: RunStatus,
    pub reserved: i64,
    pub charged: Option<i64>,
    pub reserve_legs: i64,
    /// Credits taken by its `reserve` legs (positive).
    pub reserve_sum: i64,
    pub settle_legs: i64,
    pub expire_legs: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LotState {
    pub amount: i64,
    /// `grant` moves of the lot (exactly one).
    pub grant_moves: i64,
    /// Past its expiry and still open (after the final reconcile: never).
    pub expired_open: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DraftState {
    pub farm: Uuid,
    pub tag: Option<String>,
    pub status: DraftStatus,
    /// Records written from it (0, or 1 when confirmed).
    pub records: i64,
}

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub farms: HashMap<Uuid, FarmState>,
    pub runs: HashMap<Uuid, RunState>,
    /// By (farm, idempotency key).
    pub lots: HashMap<(Uuid, String), LotState>,
    pub drafts: HashMap<Uuid, DraftState>,
}

/// Reads the snapshot of the farms `farms` from `client` (a superuser on the database).
pub async fn read(client: &tokio_postgres::Client, farms: &[Uuid]) -> Result<Snapshot> {
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    let mut s = Snapshot::default();
    let farm_rows = client
        .query(
            "SELECT f.id, f.credit_balance,
                    (SELECT balance_after FROM credit_ledger l WHERE l.farm_id = f.id ORDER BY id DESC LIMIT 1),
                    (SELECT coalesce(sum(delta), 0)::bigint FROM credit_ledger l WHERE l.farm_id = f.id),
                    (SELECT min(balance_after) FROM credit_ledger l WHERE l.farm_id = f.id),
                    (SELECT coalesce(sum(remaining), 0)::bigint FROM credit_lots c WHERE c.farm_id = f.id AND c.closed_at IS NULL),
                    (SELECT min(remaining) FROM credit_lots c WHERE c.farm_id = f.id)
               FROM farms f WHERE f.id = ANY($1)",
            &[&farms],
        )
        .await?;
    for r in farm_rows {
        s.farms.insert(
            r.get(0),
            FarmState {
                balance: r.get(1),
                last_balance_after: r.get(2),
                ledger_sum: r.get(3),
                min_balance_after: r.get(4),
                live_lots: r.get(5),
                min_lot_remaining: r.get(6),
            },
        );
    }
    let run_rows = client
        .query(
            "SELECT r.id, r.farm_id, r.request_summary, r.status, r.credits_reserved, r.credits_charged,
                    count(l.id) FILTER (WHERE l.entry_type = 'reserve'),
                    coalesce(-sum(l.delta) FILTER (WHERE l.entry_type = 'reserve'), 0)::bigint,
                    count(l.id) FILTER (WHERE l.entry_type = 'settle'),
                    count(l.id) FILTER (WHERE l.entry_type = 'expire')
               FROM ai_runs r LEFT JOIN credit_ledger l ON l.farm_id = r.farm_id AND l.ai_run_id = r.id
              WHERE r.farm_id = ANY($1)
              GROUP BY r.id",
            &[&farms],
        )
        .await?;
    for r in run_rows {
        s.runs.insert(
            r.get(0),
            RunState {
                farm: r.get(1),
                tag: r.get(2),
                status: r.get(3),
                reserved: r.get(4),
                charged: r.get(5),
                reserve_legs: r.get(6),
                reserve_sum: r.get(7),
                settle_legs: r.get(8),
                expire_legs: r.get(9),
            },
        );
    }
    let lot_rows = client
        .query(
            "SELECT c.farm_id, c.idempotency_key, c.amount,
                    (SELECT count(*) FROM credit_lot_moves m WHERE m.farm_id = c.farm_id AND m.lot_id = c.id AND m.kind = 'grant'),
                    c.closed_at IS NULL AND c.expires_at IS NOT NULL AND c.expires_at <= now()
               FROM credit_lots c WHERE c.farm_id = ANY($1)",
            &[&farms],
        )
        .await?;
    for r in lot_rows {
        s.lots.insert(
            (r.get(0), r.get(1)),
            LotState {
                amount: r.get(2),
                grant_moves: r.get(3),
                expired_open: r.get(4),
            },
        );
    }
    let draft_rows = client
        .query(
            "SELECT d.id, d.farm_id, d.summary, d.status,
                    (SELECT count(*) FROM mortality_events m WHERE m.draft_id = d.id)
               FROM assistant_drafts d WHERE d.farm_id = ANY($1)",
            &[&farms],
        )
        .await?;
    for r in draft_rows {
        s.drafts.insert(
            r.get(0),
            DraftState {
                farm: r.get(1),
                tag: r.get(2),
                status: r.get(3),
                records: r.get(4),
            },
        );
    }
    client.batch_execute("COMMIT").await?;
    Ok(s)
}
