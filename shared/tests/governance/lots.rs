//! Grants as lots (migration 0080): spend order, refunds back to their lots, expiry that
//! waits for open holds, and the refusals, as the application role and as the owner.

use std::time::Duration;

use chrono::Utc;
use farmops::{
    credits::{self, Feature, LotCategory, LotSource, NewLot, NewRun, Settlement},
    db::Db,
    testing::TestDb,
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use uuid::Uuid;

use crate::{exec, sqlstate};

const PRIVILEGE: &str = "42501";
const CHECK: &str = "23514";

/// A lot granted as the operator: `expires_in` / `effective_in` from now.
fn lot(
    key: &str,
    amount: i64,
    priority: i32,
    effective_in: Option<chrono::Duration>,
    expires_in: Option<chrono::Duration>,
) -> NewLot {
    let now = Utc::now();
    NewLot {
        amount,
        category: LotCategory::Promotional,
        priority,
        effective_at: effective_in.map(|d| now + d),
        expires_at: expires_in.map(|d| now + d),
        source: LotSource::Promotion,
        idempotency_key: key.into(),
        actor: "test".into(),
        reason: format!("lot {key}"),
    }
}

async fn grant(db: &TestDb, farm: Uuid, lot: &NewLot) -> credits::Granted {
    let tx = db.owner.tenant(farm).await.unwrap();
    let granted = credits::grant_lot(&tx, lot).await.unwrap();
    tx.commit().await.unwrap();
    granted
}

/// `(lot id, remaining)` by lot id.
async fn remaining(db: &Db, farm: Uuid) -> Vec<(i64, i64)> {
    let rows = exec(
        db,
        farm,
        "SELECT id, remaining FROM credit_lots ORDER BY id",
    )
    .await
    .unwrap();
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

async fn open(db: &Db, farm: Uuid, credits: i64) -> farmops::Result<credits::Reservation> {
    let tx = db.tenant(farm).await?;
    let run = NewRun {
        feature: Feature::Chat,
        model: "offline-farm-assistant",
        user_id: Some("worker"),
        credits,
        request_summary: None,
    };
    let reservation = credits::reserve_credits(&tx, &run).await?;
    tx.commit().await?;
    Ok(reservation)
}

async fn settle(db: &Db, farm: Uuid, run: Uuid, charged: i64) -> farmops::Result<()> {
    let tx = db.tenant(farm).await?;
    let settlement = Settlement {
        failed: false,
        credits_charged: charged,
        input_tokens: 1,
        output_tokens: 1,
        latency_ms: 1,
        response_summary: None,
        error: None,
    };
    credits::settle_run(&tx, run, &settlement).await?;
    tx.commit().await
}

async fn close_lots(db: &Db, farm: Uuid) -> credits::ClosedLots {
    let tx = db.tenant(farm).await.unwrap();
    let closed = credits::close_lots(&tx).await.unwrap();
    tx.commit().await.unwrap();
    closed
}

async fn audit(db: &Db, farm: Uuid) -> credits::LedgerAudit {
    let tx = db.tenant(farm).await.unwrap();
    let audit = credits::audit_ledger(&tx).await.unwrap();
    tx.commit().await.unwrap();
    audit
}

fn hours(h: i64) -> Option<chrono::Duration> {
    Some(chrono::Duration::hours(h))
}

#[tokio::test]
async fn lots_are_spent_by_priority_then_expiry_then_age_and_refunds_return_latest_first() {
    let db = TestDb::new().await.unwrap();
    // (lots as (amount, priority, effective in, expires in), hold, charge,
    //  remaining after the hold, remaining after the settle) - lots listed in grant order
    type Lot = (i64, i32, Option<chrono::Duration>, Option<chrono::Duration>);
    type Case = (&'static str, Vec<Lot>, i64, i64, Vec<i64>, Vec<i64>);
    let cases: [Case; 6] = [
        (
            "lower priority first",
            vec![(100, 50, None, None), (100, 10, None, None)],
            30,
            30,
            vec![100, 70],
            vec![100, 70],
        ),
        (
            "same priority: soonest expiry first, no expiry last",
            vec![
                (100, 20, None, None),
                (100, 20, None, hours(2)),
                (100, 20, None, hours(1)),
            ],
            150,
            150,
            vec![100, 50, 0],
            vec![100, 50, 0],
        ),
        (
            "same priority and expiry: oldest first",
            vec![(40, 30, None, None), (40, 30, None, None)],
            50,
            50,
            vec![0, 30],
            vec![0, 30],
        ),
        (
            "a lot not yet effective is not spent",
            vec![(100, 0, hours(1), None), (100, 90, None, None)],
            20,
            20,
            vec![100, 80],
            vec![100, 80],
        ),
        (
            "the refund goes back to the lot spent last first",
            vec![(100, 50, None, None), (100, 10, None, hours(1))],
            150,
            60,
            vec![50, 0],
            vec![100, 40],
        ),
        (
            "a whole refund restores every lot",
            vec![
                (10, 1, None, None),
                (10, 2, None, None),
                (10, 3, None, None),
            ],
            25,
            0,
            vec![0, 0, 5],
            vec![10, 10, 10],
        ),
    ];
    for (name, lots, hold, charge, after_hold, after_settle) in cases {
        let farm = db.farm(name, 0).await.unwrap();
        for (i, (amount, priority, effective_in, expires_in)) in lots.iter().enumerate() {
            let lot = lot(
                &format!("k{i}"),
                *amount,
                *priority,
                *effective_in,
                *expires_in,
            );
            grant(&db, farm, &lot).await;
        }
        let run = open(&db.app, farm, hold).await.unwrap();
        let left: Vec<i64> = remaining(&db.app, farm).await.iter().map(|l| l.1).collect();
        assert_eq!(left, after_hold, "{name}: after the hold");
        settle(&db.app, farm, run.run_id, charge).await.unwrap();
        let left: Vec<i64> = remaining(&db.app, farm).await.iter().map(|l| l.1).collect();
        assert_eq!(left, after_settle, "{name}: after the settle");
        assert!(audit(&db.owner, farm).await.holds, "{name}");
    }
}

#[tokio::test]
async fn a_hold_counts_only_what_is_spendable_and_a_key_grants_once() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("spendable", 0).await.unwrap();
    let first = grant(&db, farm, &lot("pack-1", 30, 50, None, None)).await;
    let again = grant(&db, farm, &lot("pack-1", 30, 50, None, None)).await;
    assert!(first.granted && !again.granted);
    assert_eq!((again.lot_id, again.balance), (first.lot_id, 30));
    grant(&db, farm, &lot("later", 100, 0, hours(24), None)).await;
    // 130 owned, 30 spendable: the refusal names what can be spent
    match open(&db.app, farm, 31).await {
        Err(farmops::Error::InsufficientCredits {
            needed, balance, ..
        }) => assert_eq!((needed, balance), (31, 30)),
        other => panic!("expected 402, got {other:?}"),
    }
    open(&db.app, farm, 30).await.unwrap();
    assert!(audit(&db.owner, farm).await.holds);
}

#[tokio::test]
async fn an_expiring_lot_closes_once_and_only_after_what_runs_hold_from_it_comes_back() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("expiry", 0).await.unwrap();
    let soon = grant(
        &db,
        farm,
        &lot(
            "soon",
            10,
            0,
            None,
            Some(chrono::Duration::milliseconds(1500)),
        ),
    )
    .await;
    let paid = grant(&db, farm, &lot("paid", 100, 50, None, None)).await;
    // one run holds all of `soon` and 5 of `paid`; another holds 5 more of `paid`
    let settled = open(&db.app, farm, 15).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1600)).await;
    // past expiry: nothing more is spent from it, and it is not closed while a hold is open
    let later = open(&db.app, farm, 5).await.unwrap();
    assert_eq!(
        remaining(&db.app, farm).await,
        [(soon.lot_id, 0), (paid.lot_id, 90)]
    );
    assert_eq!(close_lots(&db.app, farm).await.lots, 0);
    // the settle returns 12, latest in spend order first: 5 to `paid`, then 7 to `soon`
    settle(&db.app, farm, settled.run_id, 3).await.unwrap();
    assert_eq!(
        remaining(&db.app, farm).await,
        [(soon.lot_id, 7), (paid.lot_id, 95)]
    );
    let closed = close_lots(&db.app, farm).await;
    assert_eq!((closed.lots, closed.credits_expired), (1, 7));
    assert_eq!(
        close_lots(&db.app, farm).await,
        credits::ClosedLots::default()
    );
    let legs = exec(
        &db.app,
        farm,
        "SELECT lot_id, delta FROM credit_ledger WHERE entry_type = 'expire_grant'",
    )
    .await
    .unwrap();
    assert_eq!(legs.len(), 1);
    assert_eq!(
        (legs[0].get::<_, i64>(0), legs[0].get::<_, i64>(1)),
        (soon.lot_id, -7)
    );
    // a closed lot is final, and expires once, even for the owner
    let owner_edit = format!(
        "UPDATE credit_lots SET remaining = 1 WHERE id = {}",
        soon.lot_id
    );
    assert_eq!(sqlstate(exec(&db.owner, farm, &owner_edit).await), CHECK);
    let second_expiry = format!(
        "WITH f AS (UPDATE farms SET credit_balance = credit_balance - 1 WHERE id = current_farm_id()
                    RETURNING id, credit_balance)
         INSERT INTO credit_ledger (farm_id, entry_type, delta, balance_after, actor, reason, lot_id)
         SELECT f.id, 'expire_grant', -1, f.credit_balance, 'me', 'twice', {} FROM f",
        soon.lot_id
    );
    assert_eq!(
        sqlstate(exec(&db.owner, farm, &second_expiry).await),
        "23505"
    );
    settle(&db.app, farm, later.run_id, 5).await.unwrap();
    let a = audit(&db.owner, farm).await;
    assert!(a.holds, "{a:?}");
    assert_eq!(a.credit_balance, 95);
}

#[tokio::test]
async fn an_abandoned_runs_hold_goes_back_to_its_lot_before_the_lot_expires() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("abandoned", 0).await.unwrap();
    let soon = grant(
        &db,
        farm,
        &lot(
            "soon",
            20,
            0,
            None,
            Some(chrono::Duration::milliseconds(1000)),
        ),
    )
    .await;
    open(&db.app, farm, 12).await.unwrap(); // never settles
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let outcome = farmops::reconcile::run_at(&db.app, Utc::now() + chrono::Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(outcome.runs_expired, 1);
    assert_eq!(
        (outcome.lots_closed, outcome.grant_credits_expired),
        (1, 20)
    );
    let lots = exec(
        &db.app,
        farm,
        "SELECT remaining, closed_at IS NOT NULL FROM credit_lots",
    )
    .await
    .unwrap();
    assert_eq!(
        (lots[0].get::<_, i64>(0), lots[0].get::<_, bool>(1)),
        (0, true)
    );
    let again = farmops::reconcile::run_at(&db.app, Utc::now() + chrono::Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!((again.runs_expired, again.lots_closed), (0, 0));
    let a = audit(&db.owner, farm).await;
    assert!(
        a.holds && a.credit_balance == 0,
        "{a:?} (lot {})",
        soon.lot_id
    );
}

#[tokio::test]
async fn the_database_refuses_what_lots_must_never_do() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("refusals", 0).await.unwrap();
    let paid = grant(&db, farm, &lot("paid", 50, 50, None, None)).await;
    let later = grant(&db, farm, &lot("later", 50, 0, hours(1), None)).await;
    let id = paid.lot_id;
    // the application role: no grant, adjustment, claw-back or lot write of any kind
    let app_attacks = [
        "SELECT * FROM credit_add_lot(current_farm_id(), 1000, 'paid', 0, null, null, 'operator', 'free', 'me', 'free')".to_string(),
        "SELECT * FROM credit_adjust(current_farm_id(), 1000, 'me', 'free')".to_string(),
        format!("SELECT * FROM credit_claw_back_lot(current_farm_id(), {id}, 1, 'me', 'x')"),
        format!("UPDATE credit_lots SET remaining = amount WHERE id = {id}"),
        "INSERT INTO credit_lots (farm_id, category, priority, amount, remaining, effective_at, source, idempotency_key, actor, reason)
         VALUES (current_farm_id(), 'paid', 0, 1000, 1000, now(), 'operator', 'x', 'me', 'free')".to_string(),
        format!("INSERT INTO credit_lot_moves (farm_id, lot_id, kind, delta) VALUES (current_farm_id(), {id}, 'grant', 5)"),
        "SELECT credit_take_from_lots(current_farm_id(), null, 1)".to_string(),
        "SELECT credit_return_to_lots(current_farm_id(), gen_random_uuid(), 1)".to_string(),
    ];
    for sql in &app_attacks {
        assert_eq!(sqlstate(exec(&db.app, farm, sql).await), PRIVILEGE, "{sql}");
    }
    // the owner: terms are fixed; nothing is spent from a lot before it takes effect; the
    // balance is what the lots hold; one expiry leg per lot; no lot is deleted
    let later_id = later.lot_id;
    let owner_attacks = [
        (format!("UPDATE credit_lots SET amount = 500, remaining = 500 WHERE id = {id}"), CHECK),
        (format!("UPDATE credit_lots SET expires_at = now() + interval '1 year' WHERE id = {id}"), CHECK),
        (format!("UPDATE credit_lots SET priority = 0 WHERE id = {id}"), CHECK),
        (format!("UPDATE credit_lots SET remaining = remaining - 1 WHERE id = {later_id}"), CHECK),
        (format!("UPDATE credit_lots SET remaining = remaining - 1 WHERE id = {id}"), CHECK),
        (format!("UPDATE credit_lots SET remaining = amount + 1 WHERE id = {id}"), CHECK),
        (format!("UPDATE credit_lots SET remaining = -1 WHERE id = {id}"), CHECK),
        (
            "WITH f AS (UPDATE farms SET credit_balance = credit_balance + 100 WHERE id = current_farm_id()
                        RETURNING id, credit_balance)
             INSERT INTO credit_ledger (farm_id, entry_type, delta, balance_after, actor, reason)
             SELECT id, 'adjust', 100, credit_balance, 'me', 'no lot' FROM f".to_string(),
            CHECK,
        ),
        (format!("DELETE FROM credit_lots WHERE id = {id}"), PRIVILEGE),
        (
            "SELECT * FROM credit_add_lot(current_farm_id(), 5, 'paid', 0, null, now() - interval '1 minute', 'operator', 'past', 'me', 'x')".to_string(),
            CHECK,
        ),
        (
            "SELECT * FROM credit_add_lot(current_farm_id(), 5, 'paid', 0, '-infinity', 'infinity', 'operator', 'inf', 'me', 'x')"
                .to_string(),
            CHECK,
        ),
        (
            "SELECT * FROM credit_add_lot(current_farm_id(), -5, 'paid', 0, null, null, 'operator', 'neg', 'me', 'x')".to_string(),
            CHECK,
        ),
        (
            "SELECT * FROM credit_add_lot(current_farm_id(), 5, 'free', 0, null, null, 'operator', 'cat', 'me', 'x')".to_string(),
            CHECK,
        ),
    ];
    for (sql, code) in &owner_attacks {
        assert_eq!(sqlstate(exec(&db.owner, farm, sql).await), *code, "{sql}");
    }
    let a = audit(&db.owner, farm).await;
    assert!(a.holds, "{a:?}");
    assert_eq!(a.credit_balance, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_holds_on_three_lots_while_the_expirer_runs() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("contended lots", 0).await.unwrap();
    let ms = chrono::Duration::milliseconds;
    let lots = [
        grant(&db, farm, &lot("promo-soon", 400, 10, None, Some(ms(1200)))).await,
        grant(
            &db,
            farm,
            &lot("promo-later", 400, 20, None, Some(ms(2500))),
        )
        .await,
        grant(&db, farm, &lot("paid", 5_000, 50, None, None)).await,
    ];
    let pool = db.app_pool(32).unwrap();
    // every holder goes on until it has settled a few runs AND both promotions have expired,
    // so holds, settles and closings cross each expiry whatever the machine's speed
    let last_expiry = Utc::now() + ms(2700);
    let holders_done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let expirer = {
        let pool = pool.clone();
        let holders_done = holders_done.clone();
        tokio::spawn(async move {
            let mut closed = 0;
            while !holders_done.load(std::sync::atomic::Ordering::Relaxed) {
                let tx = pool.tenant(farm).await.unwrap();
                closed += credits::close_lots(&tx).await.unwrap().lots;
                tx.commit().await.unwrap();
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            closed
        })
    };
    let holders: Vec<_> = (0..64u64)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(i);
                let mut settled = 0;
                while settled < 3 || Utc::now() < last_expiry {
                    let hold = rng.random_range(1..=12);
                    let run = match open(&pool, farm, hold).await {
                        Ok(run) => run,
                        Err(farmops::Error::InsufficientCredits { .. }) => continue,
                        Err(e) => panic!("{e:?}"),
                    };
                    tokio::time::sleep(Duration::from_millis(rng.random_range(0..30))).await;
                    let charge = rng.random_range(0..=hold);
                    settle(&pool, farm, run.run_id, charge).await.unwrap();
                    settled += 1;
                }
                settled
            })
        })
        .collect();
    let mut runs = 0;
    for h in holders {
        runs += h.await.unwrap();
    }
    holders_done.store(true, std::sync::atomic::Ordering::Relaxed);
    expirer.await.unwrap();
    let closed = close_lots(&db.app, farm).await;
    assert!(runs >= 3 * 64, "only {runs} runs");
    let check = exec(
        &db.app,
        farm,
        "SELECT
           -- nothing spent from a lot at or after its expiry, or after it closed
           (SELECT count(*) FROM credit_lot_moves m JOIN credit_lots l ON l.id = m.lot_id
             WHERE m.kind = 'hold' AND (m.created_at >= l.expires_at OR m.created_at >= l.closed_at)),
           -- both promotions closed, each with at most one expiry leg
           (SELECT count(*) FROM credit_lots WHERE expires_at IS NOT NULL AND closed_at IS NULL),
           (SELECT count(*) FROM credit_ledger WHERE entry_type = 'expire_grant'),
           (SELECT count(DISTINCT lot_id) FROM credit_ledger WHERE entry_type = 'expire_grant'),
           (SELECT min(remaining) FROM credit_lots),
           (SELECT count(*) FROM ai_runs WHERE status = 'reserved'),
           -- every lot was spent from
           (SELECT count(*) FROM credit_lots l
             WHERE NOT EXISTS (SELECT 1 FROM credit_lot_moves m WHERE m.lot_id = l.id AND m.kind = 'hold'))",
    )
    .await
    .unwrap();
    let [
        spent_late,
        unclosed,
        expiry_legs,
        expired_lots,
        min_remaining,
        open_runs,
    ]: [i64; 6] = std::array::from_fn(|i| check[0].get(i));
    assert_eq!(spent_late, 0);
    assert_eq!(unclosed, 0, "closed at the end: {closed:?}");
    assert_eq!(expiry_legs, expired_lots);
    assert!(min_remaining >= 0);
    assert_eq!(open_runs, 0);
    let a = audit(&db.owner, farm).await;
    assert!(a.holds, "{a:?}");
    let owned: i64 = remaining(&db.app, farm).await.iter().map(|l| l.1).sum();
    assert_eq!(owned, a.credit_balance);
    assert!(lots.iter().all(|l| l.granted));
}

#[tokio::test]
async fn balances_and_open_holds_before_lots_are_carried_into_one_lot_per_farm() {
    use farmops::testing::{OWNER_PASSWORD, drop_database, empty_database, url};
    let name = format!("farmops_carry_{}", Uuid::new_v4().simple());
    empty_database(&name).await.unwrap();
    let result = async {
        let (owner, conn) =
            tokio_postgres::connect(&url("farmops_owner", OWNER_PASSWORD, &name), tokio_postgres::NoTls)
                .await?;
        tokio::spawn(conn);
        farmops::db::migrate::migrate_before(&owner, "0080").await?;
        // before lots: a grant leg with the balance, and an open run holding 30 of it
        let farm = Uuid::new_v4();
        owner
            .batch_execute(&format!(
                "INSERT INTO farms (id, name) VALUES ('{farm}', 'old farm');
                 BEGIN;
                 UPDATE farms SET credit_balance = 100 WHERE id = '{farm}';
                 INSERT INTO credit_ledger (farm_id, entry_type, delta, balance_after, actor, reason)
                 VALUES ('{farm}', 'grant', 100, 100, 'operator', 'before lots');
                 COMMIT;
                 BEGIN;
                 SELECT set_config('app.farm_id', '{farm}', true);
                 SELECT * FROM credit_open_run('{farm}', 'chat', 'offline-farm-assistant', 'u', 's', 30);
                 COMMIT;"
            ))
            .await?;
        let applied = farmops::db::migrate::migrate(&owner).await?;
        assert!(applied.contains(&"0080_credit_lots"), "{applied:?}");
        let db = Db::for_url(&url("farmops_owner", OWNER_PASSWORD, &name))?;
        let tx = db.tenant(farm).await?;
        let lots = credits::list_lots(&tx).await?;
        tx.commit().await?;
        assert_eq!(lots.len(), 1);
        assert_eq!((lots[0].amount, lots[0].remaining), (100, 70));
        assert_eq!(lots[0].status, credits::LotStatus::Live);
        // the open run's settle returns to the carried lot
        let run: Uuid = owner
            .query_one("SELECT id FROM ai_runs WHERE farm_id = $1", &[&farm])
            .await?
            .get(0);
        settle(&db, farm, run, 10).await?;
        let left: Vec<i64> = remaining(&db, farm).await.iter().map(|l| l.1).collect();
        assert_eq!(left, [90]);
        let a = audit(&db, farm).await;
        assert!(a.holds, "{a:?}");
        anyhow::Ok(())
    }
    .await;
    drop_database(&name).await.unwrap();
    result.unwrap();
}
