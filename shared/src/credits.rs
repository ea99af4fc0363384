//! Credits: reserve before any model call, settle after it, expire what never settled.
//!
//! Every balance change is ONE SQL statement that updates `farms.credit_balance` and appends
//! the ledger leg together; the schema refuses a negative balance, an edited ledger and a
//! balance that disagrees with its ledger at commit. Callers commit right after a reserve:
//! no lock is ever held across a model call.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::{
    db::{Db, TenantTx, Type},
    error::{Error, Result},
};

// ---------------------------------------------------------------- pricing (pure)

/// Credits per 1,000 tokens. One credit is the smallest unit a farm buys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ModelPrice {
    pub input_per_1k: i64,
    pub output_per_1k: i64,
}

/// The price table. Unknown models cannot be metered and are refused.
pub fn price_for(model: &str) -> Option<ModelPrice> {
    let p = |input_per_1k, output_per_1k| {
        Some(ModelPrice {
            input_per_1k,
            output_per_1k,
        })
    };
    match model {
        "offline-farm-assistant" => p(1, 4),
        "offline-embedder" => p(1, 0),
        "amazon.titan-embed-text-v2:0" => p(1, 0),
        "amazon.nova-micro-v1:0" => p(1, 4),
        "amazon.nova-lite-v1:0" => p(2, 8),
        "amazon.nova-pro-v1:0" => p(8, 32),
        m if m.contains("anthropic.claude-3-5-haiku") || m.contains("anthropic.claude-3-haiku") => {
            p(3, 15)
        }
        m if m.contains("anthropic.claude") && m.contains("sonnet") => p(10, 50),
        _ => None,
    }
}

/// The cost of `input` and `output` tokens, rounded up to a whole credit.
pub fn cost(price: ModelPrice, input_tokens: u64, output_tokens: u64) -> i64 {
    let millis = input_tokens as i128 * price.input_per_1k as i128
        + output_tokens as i128 * price.output_per_1k as i128;
    i64::try_from((millis + 999) / 1000).unwrap_or(i64::MAX)
}

/// The most a run can cost: `calls` model calls, each with at most `max_input_tokens` in and
/// `max_output_tokens` out. Reserve this; cap the run to it; settlement then never needs
/// credits the farm does not have. At least 1 credit (a run is never free to start).
pub fn worst_case_cost(
    price: ModelPrice,
    max_input_tokens: u64,
    max_output_tokens: u64,
    calls: u64,
) -> i64 {
    cost(
        price,
        max_input_tokens.saturating_mul(calls),
        max_output_tokens.saturating_mul(calls),
    )
    .max(1)
}

// ---------------------------------------------------------------- ledger operations

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    Chat,
    Embed,
    Distill,
    Reembed,
}

impl Feature {
    fn as_str_ref(&self) -> &'static &'static str {
        match self {
            Feature::Chat => &"chat",
            Feature::Embed => &"embed",
            Feature::Distill => &"distill",
            Feature::Reembed => &"reembed",
        }
    }

    pub fn as_str(self) -> &'static str {
        self.as_str_ref()
    }
}

/// What a new run is and what it may cost.
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

/// Reserves `run.credits` and opens the run: one statement (conditional debit + run row +
/// `reserve` leg). No row = the farm cannot pay: [`Error::InsufficientCredits`] with the
/// balance as it stands.
#[tracing::instrument(skip(tx, run), fields(farm_id = %tx.farm_id(), credits = run.credits))]
pub async fn reserve_credits(tx: &TenantTx, run: &NewRun<'_>) -> Result<Reservation> {
    if run.credits <= 0 {
        return Err(Error::unexpected("a reservation must be positive"));
    }
    let farm_id = tx.farm_id();
    let row = tx
        .query_opt(RESERVE_SQL, &reserve_params(&farm_id, run))
        .await?;
    match row {
        Some(row) => Ok(Reservation {
            run_id: row.get(0),
            credits_reserved: run.credits,
            balance_after: row.get(1),
        }),
        // Refused: read the balance as it is now (a new statement sees the latest commit) to
        // tell the caller how short the farm is. Only a refusal pays this round trip.
        None => {
            let balance = tx
                .query_opt(BALANCE_SQL, &[(&farm_id, Type::UUID)])
                .await?
                .ok_or(Error::NotFound("farm"))?
                .get(0);
            Err(Error::InsufficientCredits {
                needed: run.credits,
                balance,
            })
        }
    }
}

/// [`reserve_credits`] as its own transaction in ONE round trip: BEGIN + tenant, the reserve
/// statement, a read of the balance as it then stands, and COMMIT, pipelined. The farm row is
/// locked only while the server executes the statement. Use it before a model call.
#[tracing::instrument(skip(tx, run), fields(farm_id = %tx.farm_id(), credits = run.credits))]
pub async fn reserve_credits_committed(tx: TenantTx, run: &NewRun<'_>) -> Result<Reservation> {
    if run.credits <= 0 {
        return Err(Error::unexpected("a reservation must be positive"));
    }
    let farm_id = tx.farm_id();
    let params = reserve_params(&farm_id, run);
    let balance_params = [(
        &farm_id as &(dyn tokio_postgres::types::ToSql + Sync),
        Type::UUID,
    )];
    let mut results = tx
        .commit_after(&[(RESERVE_SQL, &params), (BALANCE_SQL, &balance_params)])
        .await?
        .into_iter();
    let (reserved, balance) = (
        results.next().unwrap_or_default(),
        results.next().unwrap_or_default(),
    );
    match (reserved.first(), balance.first()) {
        (Some(row), _) => Ok(Reservation {
            run_id: row.get(0),
            credits_reserved: run.credits,
            balance_after: row.get(1),
        }),
        (None, Some(row)) => Err(Error::InsufficientCredits {
            needed: run.credits,
            balance: row.get(0),
        }),
        (None, None) => Err(Error::NotFound("farm")),
    }
}

const BALANCE_SQL: &str = "SELECT credit_balance FROM farms WHERE id = $1";

const RESERVE_SQL: &str = "WITH debit AS (
       UPDATE farms SET credit_balance = credit_balance - $2
        WHERE id = $1 AND credit_balance >= $2
       RETURNING id, credit_balance),
     run AS (
       INSERT INTO ai_runs (farm_id, feature, model, user_id, credits_reserved, request_summary)
       SELECT id, $3, $4, $5, $2, $6 FROM debit
       RETURNING farm_id, id),
     leg AS (
       INSERT INTO credit_ledger (farm_id, entry_type, delta, balance_after, ai_run_id, actor)
       SELECT d.id, 'reserve', -$2, d.credit_balance, r.id, coalesce($5, 'system')
         FROM debit d CROSS JOIN run r
       RETURNING ai_run_id, balance_after)
     SELECT ai_run_id, balance_after FROM leg";

fn reserve_params<'a>(farm_id: &'a Uuid, run: &'a NewRun<'_>) -> [crate::db::Param<'a>; 6] {
    [
        (farm_id, Type::UUID),
        (&run.credits, Type::INT8),
        (run.feature.as_str_ref(), Type::TEXT),
        (&run.model, Type::TEXT),
        (&run.user_id, Type::TEXT),
        (&run.request_summary, Type::TEXT),
    ]
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    Succeeded,
    Failed,
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

/// Charges the actual cost, refunds the rest, closes the run: one statement. Idempotent: a
/// run already settled or expired is left alone and `None` comes back. A charge above the
/// reservation is refused by the schema (the caps make it impossible; if not, it is a bug).
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
    let status = if s.failed { "failed" } else { "succeeded" };
    let row = tx
        .query_opt(
            "WITH run AS (
               UPDATE ai_runs
                  SET status = $3, credits_charged = $4, input_tokens = $5, output_tokens = $6,
                      latency_ms = $7, response_summary = $8, error = $9, finished_at = now()
                WHERE farm_id = $1 AND id = $2 AND status = 'reserved'
               RETURNING farm_id, id, credits_reserved, credits_charged,
                         credits_reserved - credits_charged AS refund),
             credit AS (
               UPDATE farms f SET credit_balance = f.credit_balance + run.refund
                 FROM run WHERE f.id = run.farm_id
               RETURNING f.id, f.credit_balance, run.id AS run_id, run.refund,
                         run.credits_reserved, run.credits_charged),
             leg AS (
               INSERT INTO credit_ledger (farm_id, entry_type, delta, balance_after, ai_run_id, actor)
               SELECT id, 'settle', refund, credit_balance, run_id, 'system' FROM credit
               RETURNING id)
             SELECT c.credits_reserved, c.credits_charged, c.refund, c.credit_balance
               FROM credit c CROSS JOIN leg",
            &[
                (&farm_id, Type::UUID),
                (&run_id, Type::UUID),
                (&status, Type::TEXT),
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

/// Adds credits (a purchase, a promotion): one statement. Returns the new balance.
#[tracing::instrument(skip(tx), fields(farm_id = %tx.farm_id()))]
pub async fn grant_credits(tx: &TenantTx, amount: i64, actor: &str, reason: &str) -> Result<i64> {
    if amount <= 0 {
        return Err(Error::invalid("amount", "a grant must be positive"));
    }
    change_balance(tx, "grant", amount, actor, reason).await
}

/// Corrects a balance up or down with a reason; never below zero (422 if it would be).
#[tracing::instrument(skip(tx), fields(farm_id = %tx.farm_id()))]
pub async fn adjust_credits(tx: &TenantTx, delta: i64, actor: &str, reason: &str) -> Result<i64> {
    if delta == 0 {
        return Err(Error::invalid("delta", "an adjustment must not be zero"));
    }
    change_balance(tx, "adjust", delta, actor, reason).await
}

async fn change_balance(
    tx: &TenantTx,
    entry_type: &str,
    delta: i64,
    actor: &str,
    reason: &str,
) -> Result<i64> {
    if reason.trim().is_empty() || reason.chars().count() > 500 {
        return Err(Error::invalid("reason", "must be 1 to 500 characters"));
    }
    let farm_id = tx.farm_id();
    let row = tx
        .query_opt(
            "WITH credit AS (
               UPDATE farms SET credit_balance = credit_balance + $2
                WHERE id = $1 AND credit_balance + $2 >= 0
               RETURNING id, credit_balance)
             INSERT INTO credit_ledger (farm_id, entry_type, delta, balance_after, actor, reason)
             SELECT id, $3, $2, credit_balance, $4, $5 FROM credit
             RETURNING balance_after",
            &[
                (&farm_id, Type::UUID),
                (&delta, Type::INT8),
                (&entry_type, Type::TEXT),
                (&actor, Type::TEXT),
                (&reason, Type::TEXT),
            ],
        )
        .await?;
    match row {
        Some(r) => Ok(r.get(0)),
        None if delta < 0 => Err(Error::invalid("delta", "the balance cannot go below zero")),
        None => Err(Error::NotFound("farm")),
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Expired {
    pub runs: i64,
    pub credits_refunded: i64,
}

/// Expires the farm's reservations opened before `older_than` that never settled, refunding
/// each in full with an `expire` leg: one statement. Rows another transaction holds (a run
/// settling right now, a concurrent reconcile) are skipped, not waited for; an already
/// closed run is never touched, so running it twice refunds once.
#[tracing::instrument(skip(tx), fields(farm_id = %tx.farm_id()))]
pub async fn expire_reservations(tx: &TenantTx, older_than: DateTime<Utc>) -> Result<Expired> {
    let farm_id = tx.farm_id();
    let row = tx
        .query_one(
            "WITH stale AS (
               SELECT id FROM ai_runs
                WHERE farm_id = $1 AND status = 'reserved' AND created_at < $2
                ORDER BY id
                FOR UPDATE SKIP LOCKED),
             runs AS (
               UPDATE ai_runs r
                  SET status = 'expired', credits_charged = 0, finished_at = now(),
                      error = 'reservation expired: the run never settled'
                 FROM stale WHERE r.id = stale.id AND r.status = 'reserved'
               RETURNING r.id, r.credits_reserved),
             total AS (SELECT sum(credits_reserved) AS refund FROM runs),
             credit AS (
               UPDATE farms f SET credit_balance = f.credit_balance + t.refund
                 FROM total t WHERE f.id = $1 AND t.refund IS NOT NULL
               RETURNING f.credit_balance, t.refund),
             legs AS (
               INSERT INTO credit_ledger (farm_id, entry_type, delta, balance_after, ai_run_id, actor, reason)
               SELECT $1, 'expire', r.credits_reserved,
                      c.credit_balance - c.refund + sum(r.credits_reserved) OVER (ORDER BY r.id),
                      r.id, 'reconcile-credits', 'reservation older than the longest possible run'
                 FROM runs r CROSS JOIN credit c
                ORDER BY r.id
               RETURNING delta)
             SELECT count(*), coalesce(sum(delta), 0)::bigint FROM legs",
            &[(&farm_id, Type::UUID), (&older_than, Type::TIMESTAMPTZ)],
        )
        .await?;
    Ok(Expired {
        runs: row.get(0),
        credits_refunded: row.get(1),
    })
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
    pub holds: bool,
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

/// The full audit (operators, `farmops audit`): sums every ledger row of the farm now and
/// checks `credit_balance = last balance_after = sum(delta)`, that no recorded balance was ever
/// negative, and that the farm's latest checkpoint agrees with the rows it covers. Reads the
/// whole ledger of the farm; the evidence and credits pages use
/// [`crate::evidence::farm_ledger`].
pub async fn audit_ledger(tx: &TenantTx) -> Result<LedgerAudit> {
    let farm_id = tx.farm_id();
    let row = tx
        .query_opt(
            "WITH cp AS (
               SELECT through_id, created_at, entries, sum_delta, balance_after
                 FROM credit_ledger_checkpoints WHERE farm_id = $1
                ORDER BY through_id DESC LIMIT 1)
             SELECT f.credit_balance,
                    coalesce((SELECT balance_after FROM credit_ledger WHERE farm_id = f.id ORDER BY id DESC LIMIT 1), 0),
                    coalesce(sum(l.delta), 0)::bigint,
                    count(l.id),
                    count(l.id) FILTER (WHERE l.balance_after < 0),
                    cp.through_id, cp.created_at,
                    count(l.id) FILTER (WHERE l.id > cp.through_id),
                    (count(l.id) FILTER (WHERE l.id <= cp.through_id) = cp.entries
                     AND coalesce(sum(l.delta) FILTER (WHERE l.id <= cp.through_id), 0) = cp.sum_delta
                     AND (SELECT balance_after FROM credit_ledger
                           WHERE farm_id = f.id AND id = cp.through_id) = cp.balance_after)
               FROM farms f
               LEFT JOIN credit_ledger l ON l.farm_id = f.id
               LEFT JOIN cp ON true
              WHERE f.id = $1
              GROUP BY f.id, f.credit_balance, cp.through_id, cp.created_at, cp.entries,
                       cp.sum_delta, cp.balance_after",
            &[(&farm_id, Type::UUID)],
        )
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
    Ok(audit_of(
        farm_id,
        [row.get(0), row.get(1), row.get(2), row.get(3), row.get(4)],
        AuditMethod::Full,
        checkpoint,
    ))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_rounds_up_to_whole_credits() {
        let price = ModelPrice {
            input_per_1k: 3,
            output_per_1k: 15,
        };
        let cases = [
            (0, 0, 0),
            (1, 0, 1),
            (1000, 0, 3),
            (1001, 0, 4),
            (0, 1000, 15),
            (2000, 500, 14), // 6 + 7.5 -> 14 (rounded once, on the total)
            (u64::MAX, u64::MAX, 332_041_393_326_771_930), // no overflow at the extremes
        ];
        for (input, output, expected) in cases {
            assert_eq!(
                cost(price, input, output),
                expected,
                "{input} in, {output} out"
            );
        }
    }

    #[test]
    fn worst_case_bounds_every_actual_run_within_the_caps() {
        let price = price_for("offline-farm-assistant").unwrap();
        let (max_in, max_out, calls) = (4000, 512, 3);
        let worst = worst_case_cost(price, max_in, max_out, calls);
        for used_calls in 1..=calls {
            for frac in [0, 1, 2, 3, 4] {
                let (i, o) = (
                    max_in * frac / 4 * used_calls,
                    max_out * frac / 4 * used_calls,
                );
                assert!(cost(price, i, o) <= worst, "{used_calls} calls at {frac}/4");
            }
        }
        assert_eq!(
            worst_case_cost(price_for("offline-embedder").unwrap(), 0, 0, 1),
            1,
            "never zero"
        );
    }

    #[test]
    fn every_configured_model_has_a_price() {
        for m in [
            "offline-farm-assistant",
            "offline-embedder",
            "amazon.titan-embed-text-v2:0",
            "amazon.nova-lite-v1:0",
            "anthropic.claude-3-5-haiku-20241022-v1:0",
            "us.anthropic.claude-3-5-haiku-20241022-v1:0",
        ] {
            assert!(price_for(m).is_some(), "{m}");
        }
        assert!(price_for("some-new-model").is_none());
    }
}
