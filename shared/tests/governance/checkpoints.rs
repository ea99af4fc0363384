//! Ledger checkpoints (migration 0051): computed by the database only, never edited, a
//! committed prefix of the farm's chain even while reservations and settlements race, checked
//! by the full audit, and what the evidence totals read.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use farmops::{credits, evidence, reconcile, testing::TestDb};
use uuid::Uuid;

use crate::{
    credits::{reserve, settle},
    exec, sqlstate,
};

async fn checkpoint(db: &farmops::db::Db, farm: Uuid) -> i64 {
    let tx = db.tenant(farm).await.unwrap();
    let folded = credits::checkpoint_ledger(&tx).await.unwrap();
    tx.commit().await.unwrap();
    folded
}

async fn ledger_view(
    db: &farmops::db::Db,
    farm: Uuid,
) -> (
    evidence::FarmTotals,
    credits::LedgerAudit,
    credits::LedgerAudit,
) {
    let tx = db.tenant(farm).await.unwrap();
    let (totals, from_checkpoint) = evidence::farm_ledger(&tx).await.unwrap();
    let full = credits::audit_ledger(&tx).await.unwrap();
    tx.commit().await.unwrap();
    (totals, from_checkpoint, full)
}

#[tokio::test]
async fn checkpoints_are_written_by_the_database_only_and_never_change() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("A", 100).await.unwrap();
    assert_eq!(checkpoint(&db.app, farm).await, 1, "the grant folded");
    assert_eq!(
        checkpoint(&db.app, farm).await,
        0,
        "nothing new: no checkpoint"
    );
    let forged = format!(
        "INSERT INTO credit_ledger_checkpoints (farm_id, through_id, entries, sum_delta, granted,
           adjusted, reserved, refunded, expired, negative_balances, balance_after)
         VALUES ('{farm}', 999999, 1, 5, 5, 0, 0, 0, 0, 0, 5)"
    );
    for sql in [
        forged.as_str(),
        "UPDATE credit_ledger_checkpoints SET sum_delta = 1",
        "DELETE FROM credit_ledger_checkpoints",
        "TRUNCATE credit_ledger_checkpoints",
    ] {
        assert_eq!(
            sqlstate(exec(&db.app, farm, sql).await),
            "42501",
            "app: {sql}"
        );
    }
    for sql in [
        "UPDATE credit_ledger_checkpoints SET sum_delta = 1",
        "DELETE FROM credit_ledger_checkpoints",
    ] {
        assert!(exec(&db.owner, farm, sql).await.is_err(), "owner: {sql}");
    }
    // another farm's checkpoint is invisible to this tenant
    let other = db.farm("B", 7).await.unwrap();
    checkpoint(&db.app, other).await;
    let rows = exec(
        &db.app,
        farm,
        "SELECT farm_id FROM credit_ledger_checkpoints",
    )
    .await
    .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, Uuid>(0), farm);
}

#[tokio::test]
async fn evidence_totals_from_a_checkpoint_equal_the_full_sum() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("A", 500).await.unwrap();
    let mut runs = Vec::new();
    for i in 0..12 {
        runs.push(reserve(&db.app, farm, 5 + i).await.unwrap().run_id);
    }
    for (i, run) in runs.iter().take(8).enumerate() {
        settle(&db.app, farm, *run, i as i64).await.unwrap();
    }
    let (no_cp, audit, full) = ledger_view(&db.app, farm).await;
    assert!(audit.checkpoint.is_none() && audit.holds && full.holds);
    assert_eq!(checkpoint(&db.app, farm).await, 21);
    // more after the checkpoint: two settlements, a fresh reservation
    settle(&db.app, farm, runs[8], 3).await.unwrap();
    settle(&db.app, farm, runs[9], 0).await.unwrap();
    reserve(&db.app, farm, 9).await.unwrap();
    let (totals, audit, full) = ledger_view(&db.app, farm).await;
    let cp = audit.checkpoint.clone().unwrap();
    assert_eq!((cp.entries_after, cp.verified), (3, None));
    assert_eq!(audit.method, credits::AuditMethod::Checkpoint);
    assert_eq!(full.method, credits::AuditMethod::Full);
    assert!(audit.holds && full.holds, "{audit:?} {full:?}");
    assert_eq!(full.checkpoint.unwrap().verified, Some(true));
    for (a, b) in [
        (audit.sum_of_deltas, full.sum_of_deltas),
        (audit.entries, full.entries),
        (audit.credit_balance, full.credit_balance),
    ] {
        assert_eq!(a, b);
    }
    assert_eq!(totals.ledger_entries, no_cp.ledger_entries + 3);
    assert_eq!(totals.reserved, no_cp.reserved + 9);
    // runs 10 and 11 (15 and 16 credits) and the fresh 9 are still open
    assert_eq!(totals.open, 15 + 16 + 9);
    assert_eq!(totals.expected_balance, audit.credit_balance);
}

#[tokio::test]
async fn a_forged_checkpoint_fails_the_audit() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("A", 100).await.unwrap();
    reserve(&db.app, farm, 10).await.unwrap();
    // the owner can write one by hand (operators are trusted, not blindly): the full audit
    // re-sums what it covers and says it is wrong; the evidence sums no longer add up
    let last: i64 = exec(&db.owner, farm, "SELECT max(id) FROM credit_ledger")
        .await
        .unwrap()[0]
        .get(0);
    exec(
        &db.owner,
        farm,
        &format!(
            "INSERT INTO credit_ledger_checkpoints (farm_id, through_id, entries, sum_delta,
               granted, adjusted, reserved, refunded, expired, negative_balances, balance_after)
             VALUES ('{farm}', {last}, 2, 190, 200, 0, 10, 0, 0, 0, 90)"
        ),
    )
    .await
    .unwrap();
    let (_, audit, full) = ledger_view(&db.app, farm).await;
    assert!(!audit.holds, "{audit:?}");
    assert!(!full.holds, "{full:?}");
    assert_eq!(full.checkpoint.unwrap().verified, Some(false));
    assert_eq!(
        full.sum_of_deltas, 90,
        "the full audit sums the rows themselves"
    );
}

/// Reservations and settlements race on two farms from 12 connections while checkpoints are
/// taken over and over: every checkpoint is exactly the sum of the rows it claims to cover.
#[tokio::test]
async fn checkpoints_taken_under_concurrent_writes_are_committed_prefixes() {
    let db = TestDb::new().await.unwrap();
    let farms = [
        db.farm("A", 100_000).await.unwrap(),
        db.farm("B", 100_000).await.unwrap(),
    ];
    let pool = db.app_pool(16).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..12)
        .map(|w| {
            let pool = pool.clone();
            let farm = farms[w % 2];
            tokio::spawn(async move {
                for i in 0..40 {
                    let run = reserve(&pool, farm, 3).await.unwrap().run_id;
                    if i % 3 != 0 {
                        settle(&pool, farm, run, (i % 4) as i64).await.unwrap();
                    }
                }
            })
        })
        .collect();
    let checkpointers: Vec<_> = (0..2)
        .map(|c| {
            let pool = pool.clone();
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let mut taken = 0;
                while !stop.load(Ordering::Relaxed) {
                    taken += usize::from(checkpoint(&pool, farms[c]).await > 0);
                    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
                }
                taken
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let taken: usize = futures::future::join_all(checkpointers)
        .await
        .into_iter()
        .map(Result::unwrap)
        .sum();
    assert!(taken >= 4, "only {taken} checkpoints taken while writing");
    for farm in farms {
        checkpoint(&db.app, farm).await;
    }
    // every checkpoint against a re-sum of exactly the rows up to its through_id
    let wrong = exec(
        &db.owner,
        farms[0],
        "SELECT c.farm_id, c.through_id
           FROM credit_ledger_checkpoints c
           CROSS JOIN LATERAL (
             SELECT count(*) AS entries, sum(l.delta) AS sum_delta,
                    coalesce(-sum(l.delta) FILTER (WHERE l.entry_type = 'reserve'), 0) AS reserved,
                    coalesce(sum(l.delta) FILTER (WHERE l.entry_type = 'settle'), 0) AS refunded
               FROM credit_ledger l
              WHERE l.farm_id = c.farm_id AND l.id <= c.through_id) r
          WHERE (c.entries, c.sum_delta, c.reserved, c.refunded)
                IS DISTINCT FROM (r.entries, r.sum_delta, r.reserved, r.refunded)
             OR c.balance_after IS DISTINCT FROM
                (SELECT balance_after FROM credit_ledger WHERE id = c.through_id)",
    )
    .await
    .unwrap();
    assert!(
        wrong.is_empty(),
        "{} checkpoints disagree with the ledger",
        wrong.len()
    );
    for farm in farms {
        let (totals, audit, full) = ledger_view(&db.app, farm).await;
        assert!(audit.holds && full.holds, "{audit:?} {full:?}");
        assert_eq!(audit.checkpoint.unwrap().entries_after, 0);
        assert_eq!(full.checkpoint.unwrap().verified, Some(true));
        assert_eq!(totals.ledger_entries, full.entries);
        // the grant, then per writer 40 reserve legs and 26 settle legs, 6 writers per farm
        assert_eq!(full.entries, 1 + 6 * (40 + 26));
    }
}

#[tokio::test]
async fn the_reconcile_job_checkpoints_farms_with_enough_new_rows() {
    let db = TestDb::new().await.unwrap();
    let busy = db.farm("Busy", 1000).await.unwrap();
    let quiet = db.farm("Quiet", 1000).await.unwrap();
    for _ in 0..5 {
        reserve(&db.app, busy, 1).await.unwrap();
    }
    let state = reconcile::ReconcileState {
        db: db.app.clone(),
        config: reconcile::ReconcileConfig {
            max_run: std::time::Duration::from_secs(900),
            checkpoint_min_rows: 4,
            checkpoint_max_age: std::time::Duration::from_secs(86_400),
        },
        alerts: None,
        signer: None,
    };
    let out = reconcile::run_once(&state).await.unwrap();
    assert_eq!(
        (out.ledgers_checkpointed, out.ledger_rows_checkpointed),
        (1, 6),
        "busy has 6 rows, quiet 1 (below 4)"
    );
    let (_, audit, _) = ledger_view(&db.app, busy).await;
    assert_eq!(audit.checkpoint.unwrap().entries_after, 0);
    let (_, audit, _) = ledger_view(&db.app, quiet).await;
    assert!(audit.checkpoint.is_none());
    let again = reconcile::run_once(&state).await.unwrap();
    assert_eq!(again.ledgers_checkpointed, 0);
    // the age rule: a quiet farm (1 row, below 4) whose last checkpoint, or first row, is older
    // than the maximum age is checkpointed too; busy has nothing new and is left alone
    let aged = reconcile::checkpoint_ledgers(&db.app, 4, std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(aged, (1, 1, 0));
    let (_, audit, _) = ledger_view(&db.app, quiet).await;
    assert_eq!(audit.checkpoint.unwrap().entries_after, 0);
}
