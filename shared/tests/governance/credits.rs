//! Reserve / settle / grant / expire under real concurrency.

use std::{collections::HashMap, sync::Arc};

use chrono::Utc;
use farmops::{
    Error,
    credits::{self, Feature, NewRun, Settlement},
    db::Db,
    testing::TestDb,
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use uuid::Uuid;

fn run(credits: i64) -> NewRun<'static> {
    NewRun {
        feature: Feature::Chat,
        model: "offline-farm-assistant",
        user_id: Some("u"),
        credits,
        request_summary: Some("test"),
    }
}

pub async fn reserve(db: &Db, farm: Uuid, amount: i64) -> Result<credits::Reservation, Error> {
    let tx = db.tenant(farm).await?;
    let r = credits::reserve_credits(&tx, &run(amount)).await?;
    tx.commit().await?;
    Ok(r)
}

pub async fn settle(
    db: &Db,
    farm: Uuid,
    run_id: Uuid,
    charged: i64,
) -> Result<Option<credits::Settled>, Error> {
    let tx = db.tenant(farm).await?;
    let s = credits::settle_run(
        &tx,
        run_id,
        &Settlement {
            credits_charged: charged,
            ..Default::default()
        },
    )
    .await?;
    tx.commit().await?;
    Ok(s)
}

async fn audit(db: &Db, farm: Uuid) -> credits::LedgerAudit {
    let tx = db.tenant(farm).await.unwrap();
    credits::audit_ledger(&tx).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_reservations_on_ten_credits() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("hot", 10).await.unwrap();
    let pool = db.app_pool(64).unwrap();
    // open 64 separate connections first so the reservations really race
    let warm: Vec<_> = futures::future::join_all((0..64).map(|_| pool.client())).await;
    let warm: Vec<_> = warm
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("64 connections");
    drop(warm);
    let barrier = Arc::new(tokio::sync::Barrier::new(64));
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let (pool, barrier) = (pool.clone(), barrier.clone());
            tokio::spawn(async move {
                let tx = pool.tenant(farm).await?;
                barrier.wait().await;
                if i % 2 == 0 {
                    let r = credits::reserve_credits(&tx, &run(1)).await?;
                    tx.commit().await?;
                    Ok::<_, Error>(r)
                } else {
                    credits::reserve_credits_committed(tx, &run(1)).await
                }
            })
        })
        .collect();
    let mut ok = 0;
    let mut refused = 0;
    let results: Vec<_> = futures::future::join_all(tasks).await;
    for t in results {
        match t.unwrap() {
            Ok(_) => ok += 1,
            Err(Error::InsufficientCredits {
                needed: 1,
                balance: 0,
            }) => refused += 1,
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    assert_eq!((ok, refused), (10, 54));
    let a = audit(&db.app, farm).await;
    assert_eq!(a.credit_balance, 0);
    assert!(a.holds, "{a:?}");
    assert_eq!(a.entries, 11, "one grant and ten reservations");
}

#[tokio::test]
async fn settle_charges_once_and_refunds_the_rest() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("A", 10).await.unwrap();
    let r = reserve(&db.app, farm, 4).await.unwrap();
    assert_eq!(r.balance_after, 6);
    let first = settle(&db.app, farm, r.run_id, 3)
        .await
        .unwrap()
        .expect("settled");
    assert_eq!(
        (
            first.credits_charged,
            first.credits_refunded,
            first.balance_after
        ),
        (3, 1, 7)
    );
    assert_eq!(
        settle(&db.app, farm, r.run_id, 3).await.unwrap(),
        None,
        "a second settle does nothing"
    );
    assert_eq!(settle(&db.app, farm, r.run_id, 0).await.unwrap(), None);
    // a charge above the reservation is refused by the schema
    let r2 = reserve(&db.app, farm, 2).await.unwrap();
    assert!(settle(&db.app, farm, r2.run_id, 3).await.is_err());
    let a = audit(&db.app, farm).await;
    assert!(a.holds, "{a:?}");
    assert_eq!(a.credit_balance, 5, "7 - 2 still reserved");
}

#[tokio::test]
async fn expire_refunds_stale_reservations_once_and_settle_then_does_nothing() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("A", 10).await.unwrap();
    let stale = reserve(&db.app, farm, 3).await.unwrap();
    let cutoff = Utc::now();
    let fresh = reserve(&db.app, farm, 2).await.unwrap();
    let expire = |cutoff| {
        let db = db.app.clone();
        async move {
            let tx = db.tenant(farm).await.unwrap();
            let e = credits::expire_reservations(&tx, cutoff).await.unwrap();
            tx.commit().await.unwrap();
            e
        }
    };
    assert_eq!(
        credits::farms_with_open_reservations(&db.app, cutoff)
            .await
            .unwrap(),
        vec![farm]
    );
    let first = expire(cutoff).await;
    assert_eq!((first.runs, first.credits_refunded), (1, 3));
    assert_eq!(expire(cutoff).await.runs, 0, "idempotent");
    assert_eq!(
        settle(&db.app, farm, stale.run_id, 1).await.unwrap(),
        None,
        "an expired run never settles"
    );
    assert!(
        settle(&db.app, farm, fresh.run_id, 1)
            .await
            .unwrap()
            .is_some()
    );
    let a = audit(&db.app, farm).await;
    assert!(a.holds, "{a:?}");
    assert_eq!(a.credit_balance, 10 - 1);
    assert!(
        credits::farms_with_open_reservations(&db.app, Utc::now())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_run_settling_while_expiring_is_one_or_the_other() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("A", 1000).await.unwrap();
    let pool = db.app_pool(8).unwrap();
    let mut runs = Vec::new();
    for _ in 0..100 {
        runs.push(reserve(&pool, farm, 2).await.unwrap().run_id);
    }
    let cutoff = Utc::now();
    let settlers = runs.iter().copied().map(|run_id| {
        let pool = pool.clone();
        tokio::spawn(async move { settle(&pool, farm, run_id, 1).await.unwrap().is_some() })
    });
    let expirers: Vec<_> = (0..2)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let tx = pool.tenant(farm).await.unwrap();
                let e = credits::expire_reservations(&tx, cutoff).await.unwrap();
                tx.commit().await.unwrap();
                e.runs
            })
        })
        .collect();
    let settled = futures::future::join_all(settlers)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count() as i64;
    let expired: i64 = futures::future::join_all(expirers)
        .await
        .into_iter()
        .map(Result::unwrap)
        .sum();
    // leftovers skipped while locked are expired now
    let tx = pool.tenant(farm).await.unwrap();
    let late = credits::expire_reservations(&tx, cutoff)
        .await
        .unwrap()
        .runs;
    tx.commit().await.unwrap();
    assert_eq!(
        settled + expired + late,
        100,
        "settled {settled}, expired {expired} + {late}"
    );
    let rows = crate::exec(
        &pool,
        farm,
        "SELECT count(*) FILTER (WHERE entry_type = 'settle'), count(*) FILTER (WHERE entry_type = 'expire'),
                count(DISTINCT ai_run_id) FILTER (WHERE entry_type IN ('settle', 'expire'))
           FROM credit_ledger",
    )
    .await
    .unwrap();
    let (s, e, closed): (i64, i64, i64) = (rows[0].get(0), rows[0].get(1), rows[0].get(2));
    assert_eq!(
        (s, e, closed),
        (settled, expired + late, 100),
        "each run closed exactly once"
    );
    let a = audit(&pool, farm).await;
    assert!(a.holds, "{a:?}");
    assert_eq!(
        a.credit_balance,
        1000 - settled,
        "settled runs cost 1, expired ones nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_concurrent_mix_keeps_every_farms_ledger_consistent() {
    const WORKERS: usize = 16;
    const OPS_PER_WORKER: usize = 130; // 2,080 operations
    let db = TestDb::new().await.unwrap();
    let mut farms = Vec::new();
    for i in 0..4 {
        farms.push(db.farm(&format!("farm {i}"), 5).await.unwrap());
    }
    let pool = db.app_pool(WORKERS).unwrap();
    let farms = Arc::new(farms);
    let tasks: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (pool, owner, farms) = (pool.clone(), db.owner.clone(), farms.clone());
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(w as u64);
                let mut open: Vec<(Uuid, Uuid, i64)> = Vec::new();
                let mut counts: HashMap<&str, usize> = HashMap::new();
                for _ in 0..OPS_PER_WORKER {
                    let farm = farms[rng.random_range(0..farms.len())];
                    let op = rng.random_range(0..100);
                    let outcome = if op < 45 {
                        match reserve(&pool, farm, rng.random_range(1..=6)).await {
                            Ok(r) => {
                                open.push((farm, r.run_id, r.credits_reserved));
                                "reserved"
                            }
                            Err(Error::InsufficientCredits { .. }) => "insufficient",
                            Err(e) => panic!("reserve: {e:?}"),
                        }
                    } else if op < 80 && !open.is_empty() {
                        let (farm, run_id, reserved) =
                            open.swap_remove(rng.random_range(0..open.len()));
                        match settle(&pool, farm, run_id, rng.random_range(0..=reserved))
                            .await
                            .unwrap()
                        {
                            Some(_) => "settled",
                            None => "already closed",
                        }
                    } else if op < 86 {
                        // grants are the owner's (the app role cannot write them)
                        let tx = owner.tenant(farm).await.unwrap();
                        credits::grant_credits(&tx, rng.random_range(1..=5), "test", "top-up")
                            .await
                            .unwrap();
                        tx.commit().await.unwrap();
                        "granted"
                    } else {
                        let tx = pool.tenant(farm).await.unwrap();
                        credits::expire_reservations(&tx, Utc::now()).await.unwrap();
                        tx.commit().await.unwrap();
                        "expired"
                    };
                    *counts.entry(outcome).or_default() += 1;
                }
                counts
            })
        })
        .collect();
    let mut totals: HashMap<&str, usize> = HashMap::new();
    for t in tasks {
        for (k, v) in t.await.unwrap() {
            *totals.entry(k).or_default() += v;
        }
    }
    assert_eq!(totals.values().sum::<usize>(), WORKERS * OPS_PER_WORKER);
    for needed in ["reserved", "settled", "granted", "expired", "insufficient"] {
        assert!(
            totals.get(needed).copied().unwrap_or(0) > 0,
            "the mix exercised {needed}: {totals:?}"
        );
    }
    for &farm in farms.iter() {
        let a = audit(&pool, farm).await;
        assert!(a.holds, "{a:?}");
        let rows = crate::exec(
            &pool,
            farm,
            "SELECT min(balance_after), count(*) FROM credit_ledger",
        )
        .await
        .unwrap();
        assert!(rows[0].get::<_, i64>(0) >= 0);
    }
}

#[tokio::test]
async fn a_committed_reservation_costs_one_round_trip_and_reports_the_current_balance() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("A", 3).await.unwrap();
    let before = db.app.round_trips();
    let r = credits::reserve_credits_committed(db.app.tenant(farm).await.unwrap(), &run(2))
        .await
        .unwrap();
    assert_eq!(r.balance_after, 1);
    assert_eq!(db.app.round_trips() - before, 1);
    let refused =
        credits::reserve_credits_committed(db.app.tenant(farm).await.unwrap(), &run(2)).await;
    assert!(
        matches!(
            refused,
            Err(Error::InsufficientCredits {
                needed: 2,
                balance: 1
            })
        ),
        "{refused:?}"
    );
    let other = Uuid::new_v4();
    let missing =
        credits::reserve_credits_committed(db.app.tenant(other).await.unwrap(), &run(1)).await;
    assert!(matches!(missing, Err(Error::NotFound(_))), "{missing:?}");
    let a = audit(&db.app, farm).await;
    assert!(a.holds && a.credit_balance == 1, "{a:?}");
}

#[tokio::test]
async fn a_reservation_costs_two_round_trips() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("A", 10).await.unwrap();
    let before = db.app.round_trips();
    reserve(&db.app, farm, 1).await.unwrap();
    // BEGIN + tenant + the reserve statement pipelined in one trip, COMMIT in the second
    assert_eq!(db.app.round_trips() - before, 2);
}

/// Migration 0098: a farm's holds queue on the farm's hold lock (`credit_holds:<farm>`) before
/// they lock the farm row; settles do not take it. Held here by hand (as the application role)
/// while a hold and a settle run on the same farm: the hold waits on that lock until it is
/// released, then goes through; the settle does not wait; another farm's hold does not wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn holds_queue_on_their_farm_and_settles_do_not() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("queued", 100).await.unwrap();
    let other = db.farm("elsewhere", 100).await.unwrap();
    let open = reserve(&db.app, farm, 5).await.unwrap();

    let holder = db.app_client().await.unwrap();
    holder
        .batch_execute(&format!(
            "BEGIN; SELECT set_config('app.farm_id', '{farm}', true);
             SELECT pg_advisory_xact_lock(hashtextextended('credit_holds:{farm}', 0));"
        ))
        .await
        .unwrap();

    let app = db.app.clone();
    let waiting = tokio::spawn(async move { reserve(&app, farm, 3).await });
    // the superuser: other roles' sessions are hidden from the owner in pg_stat_activity
    let admin = farmops::testing::admin_client(&db.name).await.unwrap();
    let mut waits_on_the_queue = false;
    for _ in 0..100 {
        let n: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                  WHERE datname = current_database() AND wait_event = 'advisory'
                    AND query LIKE '%credit_open_run%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if n == 1 {
            waits_on_the_queue = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(waits_on_the_queue, "the hold waits on its farm's hold lock");
    assert!(!waiting.is_finished());

    let quick = std::time::Duration::from_secs(10);
    let settled = tokio::time::timeout(quick, settle(&db.app, farm, open.run_id, 2))
        .await
        .expect("a settle does not queue behind holds")
        .unwrap()
        .expect("settled now");
    assert_eq!(settled.credits_refunded, 3);
    tokio::time::timeout(quick, reserve(&db.app, other, 1))
        .await
        .expect("another farm's hold does not wait")
        .unwrap();
    assert!(!waiting.is_finished(), "still queued");

    holder.batch_execute("COMMIT").await.unwrap();
    let held = tokio::time::timeout(quick, waiting)
        .await
        .expect("released, the hold goes through")
        .unwrap()
        .unwrap();
    assert_eq!(held.balance_after, 100 - 2 - 3);
    let a = audit(&db.app, farm).await;
    assert!(a.holds, "{a:?}");
    assert_eq!(a.credit_balance, 95);
}
