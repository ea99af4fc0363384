//! The four doors to a run's credits: open (with the first hold), top up, settle, expire.
//!
//! Each is ONE call of a database function (migration 0060) that updates the balance, the run
//! and the ledger together; the application role has no other write on them. Callers commit
//! right after a hold: no lock is ever held across a model call.
//!
//! A hold is refused when the farm cannot pay ([`Error::InsufficientCredits`]) or when it would
//! pass the member's daily or monthly budget ([`Error::MemberBudgetExceeded`], migration 0085:
//! the run's member, the window it was opened in); either way nothing is written.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::Feature;
use crate::{
    db::{Param, TenantTx, Type},
    error::{Error, Result},
};

/// What a new run is and what its first hold is.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    pub feature: Feature,
    pub model: &'a str,
    pub user_id: Option<&'a str>,
    pub credits: i64,
    pub request_summary: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reservation {
    pub run_id: Uuid,
    pub credits_reserved: i64,
    pub balance_after: i64,
}

const OPEN_SQL: &str = "SELECT run_id, held, balance, budget_window, budget_cap, budget_spent,
         budget_held, budget_resets_at
    FROM credit_open_run($1, $2, $3, $4, $5, $6)";
const HOLD_SQL: &str = "SELECT held, balance, budget_window, budget_cap, budget_spent, budget_held,
         budget_resets_at
    FROM credit_hold($1, $2, $3)";

/// A refused hold as its error: the member's budget when the `budget_*` columns (from
/// `first`: window, cap, spent, held, resets_at) say so, else the farm's credits (`balance`
/// at column `first - 1`).
fn refused(row: &tokio_postgres::Row, first: usize, credits: i64) -> Error {
    match row.get::<_, Option<String>>(first) {
        Some(window) => Error::MemberBudgetExceeded {
            window,
            cap: row.get(first + 1),
            spent: row.get(first + 2),
            held: row.get(first + 3),
            needed: credits,
            resets_at: row.get(first + 4),
        },
        None => Error::InsufficientCredits {
            needed: credits,
            balance: row.get(first - 1),
        },
    }
}

fn open_params<'a>(farm_id: &'a Uuid, run: &'a NewRun<'_>) -> [Param<'a>; 6] {
    [
        (farm_id, Type::UUID),
        (run.feature.as_str_ref(), Type::TEXT),
        (&run.model, Type::TEXT),
        (&run.user_id, Type::TEXT),
        (&run.request_summary, Type::TEXT),
        (&run.credits, Type::INT8),
    ]
}

fn positive(credits: i64) -> Result<()> {
    if credits <= 0 {
        return Err(Error::unexpected("a hold must be positive"));
    }
    Ok(())
}

fn opened(row: Option<&tokio_postgres::Row>, credits: i64) -> Result<Reservation> {
    let row = row.ok_or(Error::NotFound("farm"))?;
    match row.get::<_, Option<Uuid>>(0) {
        Some(run_id) => Ok(Reservation {
            run_id,
            credits_reserved: row.get(1),
            balance_after: row.get(2),
        }),
        None => Err(refused(row, 3, credits)),
    }
}

/// Opens a run holding `run.credits` (its first hold). The farm cannot pay:
/// [`Error::InsufficientCredits`] with the balance as it stands; the member's budget cannot
/// take it: [`Error::MemberBudgetExceeded`]; either way nothing is written.
#[tracing::instrument(skip(tx, run), fields(farm_id = %tx.farm_id(), credits = run.credits))]
pub async fn reserve_credits(tx: &TenantTx, run: &NewRun<'_>) -> Result<Reservation> {
    positive(run.credits)?;
    let farm_id = tx.farm_id();
    let row = tx.query_opt(OPEN_SQL, &open_params(&farm_id, run)).await?;
    opened(row.as_ref(), run.credits)
}

/// [`reserve_credits`] as its own transaction in ONE round trip (BEGIN + tenant, the open,
/// COMMIT, pipelined): the farm row is locked only while the server runs the function.
#[tracing::instrument(skip(tx, run), fields(farm_id = %tx.farm_id(), credits = run.credits))]
pub async fn reserve_credits_committed(tx: TenantTx, run: &NewRun<'_>) -> Result<Reservation> {
    positive(run.credits)?;
    let farm_id = tx.farm_id();
    let params = open_params(&farm_id, run);
    let rows = tx.commit_after(&[(OPEN_SQL, &params)]).await?;
    opened(rows.first().and_then(|r| r.first()), run.credits)
}

/// A top-up of an open run's hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Held {
    /// The run's whole hold now.
    pub held: i64,
    pub balance_after: i64,
}

/// Adds `credits` to an open run's hold as its own transaction, in one round trip. The farm
/// cannot pay: [`Error::InsufficientCredits`]; the member's budget (in the window the run was
/// opened in) cannot take it: [`Error::MemberBudgetExceeded`] (nothing changes). A run that is no longer
/// open (reconcile expired it) is an error.
#[tracing::instrument(skip(tx), fields(farm_id = %tx.farm_id(), %run_id, credits))]
pub async fn top_up_committed(tx: TenantTx, run_id: Uuid, credits: i64) -> Result<Held> {
    positive(credits)?;
    let farm_id = tx.farm_id();
    let params: [Param<'_>; 3] = [
        (&farm_id, Type::UUID),
        (&run_id, Type::UUID),
        (&credits, Type::INT8),
    ];
    let rows = tx.commit_after(&[(HOLD_SQL, &params)]).await?;
    let row = rows
        .first()
        .and_then(|r| r.first())
        .ok_or(Error::NotFound("farm"))?;
    match row.get::<_, Option<i64>>(0) {
        Some(held) => Ok(Held {
            held,
            balance_after: row.get(1),
        }),
        None => Err(refused(row, 2, credits)),
    }
}

#[derive(Debug, Clone, Default)]
pub struct Settlement<'a> {
    pub failed: bool,
    pub credits_charged: i64,
    pub input_tokens: i32,
    pub output_tokens: i32,
    pub latency_ms: i32,
    pub response_summary: Option<&'a str>,
    pub error: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Settled {
    pub credits_reserved: i64,
    pub credits_charged: i64,
    pub credits_refunded: i64,
    pub balance_after: i64,
}

/// Charges the actual cost, returns the rest of the hold, closes the run: one function call.
/// Idempotent: a run already settled or expired is left alone and `None` comes back. A
/// charge above the hold is refused by the schema (the metered run never asks for one).
#[tracing::instrument(skip(tx, s), fields(farm_id = %tx.farm_id(), run_id = %run_id))]
pub async fn settle_run(
    tx: &TenantTx,
    run_id: Uuid,
    s: &Settlement<'_>,
) -> Result<Option<Settled>> {
    if s.credits_charged < 0 {
        return Err(Error::unexpected("a charge cannot be negative"));
    }
    let farm_id = tx.farm_id();
    let row = tx
        .query_opt(
            "SELECT reserved, charged_credits, refunded, balance
               FROM credit_settle_run($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                (&farm_id, Type::UUID),
                (&run_id, Type::UUID),
                (&s.failed, Type::BOOL),
                (&s.credits_charged, Type::INT8),
                (&s.input_tokens, Type::INT4),
                (&s.output_tokens, Type::INT4),
                (&s.latency_ms, Type::INT4),
                (&s.response_summary, Type::TEXT),
                (&s.error, Type::TEXT),
            ],
        )
        .await?;
    Ok(row.map(|r| Settled {
        credits_reserved: r.get(0),
        credits_charged: r.get(1),
        credits_refunded: r.get(2),
        balance_after: r.get(3),
    }))
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Expired {
    pub runs: i64,
    pub credits_refunded: i64,
}

/// Expires the farm's runs opened before `older_than` that never settled, returning each
/// one's whole hold with an `expire` leg: one function call. Rows another transaction holds
/// (a run settling or topping up right now, a concurrent reconcile) are skipped, not waited
/// for; a closed run is never touched, so running it twice refunds once.
#[tracing::instrument(skip(tx), fields(farm_id = %tx.farm_id()))]
pub async fn expire_reservations(tx: &TenantTx, older_than: DateTime<Utc>) -> Result<Expired> {
    let farm_id = tx.farm_id();
    let row = tx
        .query_one(
            "SELECT runs, refunded FROM credit_expire_runs($1, $2)",
            &[(&farm_id, Type::UUID), (&older_than, Type::TIMESTAMPTZ)],
        )
        .await?;
    Ok(Expired {
        runs: row.get(0),
        credits_refunded: row.get(1),
    })
}
