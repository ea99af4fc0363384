//! Section 1's designs: what one reservation is in each (ours, naive locking, naive
//! read-then-write, the bare update), as SQL and [`reserve_once`]. Measuring them and the
//! report are in the parent module.

use anyhow::Result;
use farmops::{
    Error,
    credits::{self, Feature, NewRun},
    db::{Db, Type},
};
use uuid::Uuid;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Design {
    Ours,
    NaiveLock,
    NaiveNoLock,
    /// The physical limit: one bare single-row UPDATE of a plain table (no rules), autocommit.
    BareUpdate,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Reserved,
    Insufficient,
    Refused,
}

const RUN: NewRun<'static> = NewRun {
    feature: Feature::Chat,
    model: "offline-farm-assistant",
    user_id: Some("bench"),
    credits: 1,
    request_summary: None,
};

/// A naive design's balance change by `$2` on farm `$1`, in one statement: the farm's balance,
/// its one credit lot (the schema keeps the balance equal to the lots, migration 0080) and the
/// lot's move, so the naive designs run under the same commit-time checks as ours.
pub(crate) const NAIVE_CHANGE_BALANCE: &str = "
    WITH lot AS (
      UPDATE credit_lots SET remaining = remaining + $2
       WHERE farm_id = $1 AND closed_at IS NULL RETURNING id),
    moved AS (
      INSERT INTO credit_lot_moves (farm_id, lot_id, kind, delta)
      SELECT $1, id, 'adjust', $2 FROM lot)
    UPDATE farms SET credit_balance = credit_balance + $2 WHERE id = $1";

pub(super) async fn reserve_once(pool: &Db, design: Design, farm: Uuid) -> Result<Outcome> {
    match design {
        Design::Ours => {
            match credits::reserve_credits_committed(pool.tenant(farm).await?, &RUN).await {
                Ok(_) => Ok(Outcome::Reserved),
                Err(Error::InsufficientCredits { .. }) => Ok(Outcome::Insufficient),
                Err(e) => Err(e.into()),
            }
        }
        Design::BareUpdate => {
            pool.client()
                .await?
                .query_typed(
                    "UPDATE bench_bare SET n = n + 1 WHERE id = $1",
                    &[(&farm, Type::UUID)],
                )
                .await?;
            Ok(Outcome::Reserved)
        }
        Design::NaiveLock => {
            let c = pool.client().await?;
            c.batch_execute(&format!(
                "BEGIN; SELECT set_config('app.farm_id', '{farm}', true)"
            ))
            .await?;
            let balance: i64 = c
                .query_typed(
                    "SELECT credit_balance FROM farms WHERE id = $1 FOR UPDATE",
                    &[(&farm, Type::UUID)],
                )
                .await?[0]
                .get(0);
            if balance < 1 {
                c.batch_execute("ROLLBACK").await?;
                return Ok(Outcome::Insufficient);
            }
            c.query_typed(
                NAIVE_CHANGE_BALANCE,
                &[(&farm, Type::UUID), (&-1i64, Type::INT8)],
            )
            .await?;
            insert_run_and_leg(&c, farm, balance - 1).await?;
            c.batch_execute("COMMIT").await?;
            Ok(Outcome::Reserved)
        }
        Design::NaiveNoLock => {
            let c = pool.client().await?;
            let tenant = format!("BEGIN; SELECT set_config('app.farm_id', '{farm}', true)");
            c.batch_execute(&tenant).await?;
            let balance: i64 = c
                .query_typed(
                    "SELECT credit_balance FROM farms WHERE id = $1",
                    &[(&farm, Type::UUID)],
                )
                .await?[0]
                .get(0);
            c.batch_execute("COMMIT").await?;
            if balance < 1 {
                return Ok(Outcome::Insufficient);
            }
            let after = balance - 1;
            c.batch_execute(&tenant).await?;
            let write = async {
                // the lost update: writes the balance it read, minus one
                c.query_typed(
                    "WITH lot AS (
                       UPDATE credit_lots l SET remaining = $2
                         FROM (SELECT id, remaining FROM credit_lots
                                WHERE farm_id = $1 AND closed_at IS NULL) o
                        WHERE l.id = o.id RETURNING l.id, $2 - o.remaining AS delta),
                     moved AS (
                       INSERT INTO credit_lot_moves (farm_id, lot_id, kind, delta)
                       SELECT $1, id, 'adjust', delta FROM lot)
                     UPDATE farms SET credit_balance = $2 WHERE id = $1",
                    &[(&farm, Type::UUID), (&after, Type::INT8)],
                )
                .await?;
                insert_run_and_leg(&c, farm, after).await?;
                c.batch_execute("COMMIT").await
            };
            match write.await {
                Ok(()) => Ok(Outcome::Reserved),
                Err(_) => {
                    let _ = c.batch_execute("ROLLBACK").await;
                    Ok(Outcome::Refused)
                }
            }
        }
    }
}

/// The naive designs' two inserts, one round trip each: the run, then its `reserve` leg.
async fn insert_run_and_leg(
    c: &tokio_postgres::Client,
    farm: Uuid,
    balance_after: i64,
) -> Result<(), tokio_postgres::Error> {
    let run: Uuid = c
        .query_typed(
            "INSERT INTO ai_runs (farm_id, feature, model, user_id, credits_reserved)
             VALUES ($1, 'chat', 'offline-farm-assistant', 'bench', 1) RETURNING id",
            &[(&farm, Type::UUID)],
        )
        .await?[0]
        .get(0);
    c.query_typed(
        "INSERT INTO credit_ledger (farm_id, entry_type, delta, balance_after, ai_run_id, actor)
         VALUES ($1, 'reserve', -1, $2, $3, 'bench')",
        &[
            (&farm, Type::UUID),
            (&balance_after, Type::INT8),
            (&run, Type::UUID),
        ],
    )
    .await?;
    Ok(())
}
