//! Holds per model call (migration 0060): the application role cannot mint credits, a run
//! agrees with its legs whoever writes, and a seeded property test of the metered run.

use chrono::Utc;
use farmops::{
    Error,
    credits::{self, Feature, MeteredRun, ModelPrice, NextCall, RunEnd, RunSpec},
    db::Db,
    model::Usage,
    testing::TestDb,
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use uuid::Uuid;

use crate::{exec, sqlstate};

const PRIVILEGE: &str = "42501";
const CHECK: &str = "23514";

async fn balance(db: &TestDb, farm: Uuid) -> i64 {
    let owner = db.owner_client().await.unwrap();
    owner
        .query_one("SELECT credit_balance FROM farms WHERE id = $1", &[&farm])
        .await
        .unwrap()
        .get(0)
}

async fn audit_holds(db: &Db, farm: Uuid) -> bool {
    let tx = db.tenant(farm).await.unwrap();
    credits::audit_ledger(&tx).await.unwrap().holds
}

#[tokio::test]
async fn the_application_role_cannot_mint_credits() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("mint", 10).await.unwrap();
    let attacks = [
        // a grant leg with the balance raised to match, in one transaction
        "WITH f AS (UPDATE farms SET credit_balance = credit_balance + 100 WHERE id = current_farm_id()
                    RETURNING id, credit_balance)
         INSERT INTO credit_ledger (farm_id, entry_type, delta, balance_after, actor, reason)
         SELECT id, 'grant', 100, credit_balance, 'me', 'free credits' FROM f",
        // the same with an adjust leg
        "WITH f AS (UPDATE farms SET credit_balance = credit_balance + 100 WHERE id = current_farm_id()
                    RETURNING id, credit_balance)
         INSERT INTO credit_ledger (farm_id, entry_type, delta, balance_after, actor, reason)
         SELECT id, 'adjust', 100, credit_balance, 'me', 'correction' FROM f",
        // a run claiming a 1,000 hold with no hold leg ...
        "INSERT INTO ai_runs (farm_id, feature, model, credits_reserved)
         VALUES (current_farm_id(), 'chat', 'offline-farm-assistant', 1000)",
        // ... and a settle leg refunding it
        "WITH r AS (SELECT id FROM ai_runs WHERE farm_id = current_farm_id() LIMIT 1),
              f AS (UPDATE farms SET credit_balance = credit_balance + 1000 WHERE id = current_farm_id()
                    RETURNING id, credit_balance)
         INSERT INTO credit_ledger (farm_id, entry_type, delta, balance_after, ai_run_id)
         SELECT f.id, 'settle', 1000, f.credit_balance, r.id FROM f, r",
        // the balance alone
        "UPDATE farms SET credit_balance = 1000000 WHERE id = current_farm_id()",
        // a run's hold or charge edited in place
        "UPDATE ai_runs SET credits_reserved = 1000 WHERE farm_id = current_farm_id()",
    ];
    for sql in attacks {
        assert_eq!(sqlstate(exec(&db.app, farm, sql).await), PRIVILEGE, "{sql}");
    }
    // Through the doors: each one computes the amounts itself and refuses nonsense.
    let opened = exec(
        &db.app,
        farm,
        "SELECT run_id FROM credit_open_run(current_farm_id(), 'chat', 'offline-farm-assistant', 'u', 's', 4)",
    )
    .await
    .unwrap();
    let run: Uuid = opened[0].get(0);
    let refusals = [
        // a negative hold is a refund in disguise
        (
            format!("SELECT * FROM credit_hold(current_farm_id(), '{run}', -100)"),
            CHECK,
        ),
        (
            "SELECT * FROM credit_open_run(current_farm_id(), 'chat', 'offline-farm-assistant', 'u', 's', -5)".to_string(),
            CHECK,
        ),
        // charging above the hold
        (
            format!(
                "SELECT * FROM credit_settle_run(current_farm_id(), '{run}', false, 5, 0, 0, 0, null, null)"
            ),
            CHECK,
        ),
        // a negative charge would refund more than was held
        (
            format!(
                "SELECT * FROM credit_settle_run(current_farm_id(), '{run}', false, -50, 0, 0, 0, null, null)"
            ),
            CHECK,
        ),
        // another farm than the transaction's tenant
        (
            format!(
                "SELECT * FROM credit_hold('{}', '{run}', 1)",
                Uuid::new_v4()
            ),
            PRIVILEGE,
        ),
        (
            format!(
                "SELECT * FROM credit_expire_runs('{}', now())",
                Uuid::new_v4()
            ),
            PRIVILEGE,
        ),
        // a run that does not exist (or is another farm's) cannot be topped up
        (
            format!(
                "SELECT * FROM credit_hold(current_farm_id(), '{}', 1)",
                Uuid::new_v4()
            ),
            "55000",
        ),
    ];
    for (sql, code) in &refusals {
        assert_eq!(sqlstate(exec(&db.app, farm, sql).await), *code, "{sql}");
    }
    // Settled once; a second settle changes nothing.
    let settle = format!(
        "SELECT * FROM credit_settle_run(current_farm_id(), '{run}', false, 3, 0, 0, 0, null, null)"
    );
    assert_eq!(exec(&db.app, farm, &settle).await.unwrap().len(), 1);
    assert_eq!(exec(&db.app, farm, &settle).await.unwrap().len(), 0);
    assert_eq!(balance(&db, farm).await, 7);
    // A closed run takes no more holds.
    let top_up = format!("SELECT * FROM credit_hold(current_farm_id(), '{run}', 1)");
    assert_eq!(sqlstate(exec(&db.app, farm, &top_up).await), "55000");
    assert!(audit_holds(&db.app, farm).await);
}

/// The application role's statements in one transaction, committed.
async fn app_transaction(db: &TestDb, farm: Uuid, statements: &[String]) -> Result<(), Error> {
    let tx = db.app.tenant(farm).await?;
    for sql in statements {
        tx.query(sql, &[]).await?;
    }
    tx.commit().await
}

/// Migration 0092: the doors and the commit-time checks run as the owner, and before 0092 they
/// resolved table names in the caller's temporary schema first. This attack committed then:
/// fake runs, lot moves and ledger in pg_temp, and credit_settle_run refunded a made-up hold of
/// 1,000 into the real farm and lot, checked against the fake ledger.
#[tokio::test]
async fn the_doors_ignore_the_callers_temporary_tables() {
    let db = TestDb::new().await.unwrap();
    // 2,000 granted and 1,500 spent: the farm's lot has room for a refund of 1,000
    let farm = db.farm("shadow", 2000).await.unwrap();
    let opened = exec(
        &db.app,
        farm,
        "SELECT run_id FROM credit_open_run(current_farm_id(), 'chat', 'm', 'u', null, 1500)",
    )
    .await
    .unwrap();
    let spent: Uuid = opened[0].get(0);
    let settle = format!(
        "SELECT * FROM credit_settle_run(current_farm_id(), '{spent}', false, 1500, 0, 0, 0, null, null)"
    );
    exec(&db.app, farm, &settle).await.unwrap();
    assert_eq!(balance(&db, farm).await, 500);
    let fake_run = Uuid::new_v4();
    let shadow = |table: &str| {
        format!("CREATE TEMP TABLE {table} ON COMMIT DROP AS SELECT * FROM public.{table} LIMIT 0")
    };
    let mut settle_a_fake_run = vec![
        shadow("ai_runs"),
        shadow("credit_lot_moves"),
        shadow("credit_ledger"),
        "GRANT ALL ON pg_temp.ai_runs, pg_temp.credit_lot_moves, pg_temp.credit_ledger
           TO farmops_owner"
            .to_string(),
        format!(
            "INSERT INTO pg_temp.ai_runs (id, farm_id, feature, model, status, credits_reserved,
                                          credits_charged, created_at)
             VALUES ('{fake_run}', current_farm_id(), 'chat', 'm', 'reserved', 1000, 0, now())"
        ),
        format!(
            "INSERT INTO pg_temp.credit_lot_moves (farm_id, lot_id, ai_run_id, kind, delta)
             SELECT current_farm_id(), id, '{fake_run}', 'hold', -1000 FROM public.credit_lots
              WHERE farm_id = current_farm_id() AND closed_at IS NULL"
        ),
        "INSERT INTO pg_temp.credit_ledger (farm_id, entry_type, delta, balance_after, actor)
         SELECT id, 'grant', 0, credit_balance + 1000, 'me' FROM public.farms
          WHERE id = current_farm_id()"
            .to_string(),
    ];
    settle_a_fake_run.push(format!(
        "SELECT * FROM credit_settle_run(current_farm_id(), '{fake_run}', false, 0, 0, 0, 0, null, null)"
    ));
    // The door sees no such run (the real ai_runs): nothing changes, and the commit passes.
    app_transaction(&db, farm, &settle_a_fake_run)
        .await
        .unwrap();
    assert_eq!(balance(&db, farm).await, 500);
    // A fake lot of a billion credits does not make a hold of 1,000 spendable either.
    let open_on_a_fake_lot = vec![
        shadow("credit_lots"),
        "GRANT ALL ON pg_temp.credit_lots TO farmops_owner".to_string(),
        "INSERT INTO pg_temp.credit_lots SELECT * FROM public.credit_lots
          WHERE farm_id = current_farm_id()"
            .to_string(),
        "UPDATE pg_temp.credit_lots SET remaining = 1000000000".to_string(),
        "SELECT run_id FROM credit_open_run(current_farm_id(), 'chat', 'm', 'u', null, 1000)"
            .to_string(),
    ];
    app_transaction(&db, farm, &open_on_a_fake_lot)
        .await
        .unwrap();
    assert_eq!(balance(&db, farm).await, 500);
    let opened = exec(
        &db.app,
        farm,
        "SELECT count(*) FROM ai_runs WHERE farm_id = current_farm_id()",
    )
    .await
    .unwrap();
    assert_eq!(
        opened[0].get::<_, i64>(0),
        1,
        "no run but the spent one was opened"
    );
    assert!(audit_holds(&db.app, farm).await);
    let tx = db.app.tenant(farm).await.unwrap();
    let audit = credits::audit_ledger(&tx).await.unwrap();
    assert_eq!(
        (
            audit.credit_balance,
            audit.last_balance_after,
            audit.sum_of_deltas
        ),
        (500, 500, 500)
    );
}

#[tokio::test]
async fn a_run_agrees_with_its_legs_even_for_the_owner() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("legs", 100).await.unwrap();
    let opened = exec(
        &db.owner,
        farm,
        "SELECT run_id FROM credit_open_run(current_farm_id(), 'chat', 'offline-farm-assistant', 'u', 's', 10)",
    )
    .await
    .unwrap();
    let run: Uuid = opened[0].get(0);
    let broken = [
        // a hold leg the run's row does not count
        format!(
            "WITH f AS (UPDATE farms SET credit_balance = credit_balance - 5 WHERE id = current_farm_id() RETURNING id, credit_balance)
             INSERT INTO credit_ledger (farm_id, entry_type, delta, balance_after, ai_run_id)
             SELECT id, 'reserve', -5, credit_balance, '{run}' FROM f"
        ),
        // a hold the legs do not carry
        format!("UPDATE ai_runs SET credits_reserved = 50 WHERE id = '{run}'"),
        // a settle leg returning more than held - charged
        format!(
            "WITH r AS (UPDATE ai_runs SET status = 'succeeded', credits_charged = 4, finished_at = now() WHERE id = '{run}' RETURNING id),
                  f AS (UPDATE farms SET credit_balance = credit_balance + 10 WHERE id = current_farm_id() RETURNING id, credit_balance)
             INSERT INTO credit_ledger (farm_id, entry_type, delta, balance_after, ai_run_id)
             SELECT f.id, 'settle', 10, f.credit_balance, r.id FROM f, r"
        ),
        // a closing leg on an open run
        format!(
            "WITH f AS (UPDATE farms SET credit_balance = credit_balance + 1 WHERE id = current_farm_id() RETURNING id, credit_balance)
             INSERT INTO credit_ledger (farm_id, entry_type, delta, balance_after, ai_run_id)
             SELECT id, 'settle', 1, credit_balance, '{run}' FROM f"
        ),
        // a hold taken back
        format!("UPDATE ai_runs SET credits_reserved = 5 WHERE id = '{run}'"),
    ];
    for sql in &broken {
        assert_eq!(sqlstate(exec(&db.owner, farm, sql).await), CHECK, "{sql}");
    }
    assert_eq!(balance(&db, farm).await, 90);
    assert!(audit_holds(&db.owner, farm).await);
}

const PRICE: ModelPrice = ModelPrice {
    input_per_1k: 3,
    output_per_1k: 15,
};

/// One random run: a few calls, each held for with a random bound, reporting random usage
/// (now and then above the bound: a provider that miscounts), failing or being abandoned at
/// random. Returns (held, charged) as the run saw them, or `None` when it never opened.
async fn random_run(db: &Db, farm: Uuid, rng: &mut StdRng) -> Result<Option<(i64, i64)>, Error> {
    let first = NextCall {
        input_tokens: rng.random_range(0..3000),
        max_output_tokens: rng.random_range(0..1500),
        min_output_tokens: rng.random_range(0..300),
    };
    let spec = RunSpec {
        feature: Feature::Chat,
        model: "anthropic.claude-3-5-haiku-20241022-v1:0",
        price: PRICE,
        user_id: Some("u"),
        request_summary: None,
    };
    let mut rng2 = StdRng::seed_from_u64(rng.random());
    let (mut run, mut output) =
        match MeteredRun::open(db, db.tenant(farm).await?, spec, first).await {
            Ok(opened) => opened,
            Err(Error::InsufficientCredits { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
    let mut input = first.input_tokens;
    for call in 0..rng2.random_range(1..5) {
        if call > 0 {
            let next = NextCall {
                input_tokens: rng2.random_range(0..3000),
                max_output_tokens: rng2.random_range(0..1500),
                min_output_tokens: rng2.random_range(0..300),
            };
            match run.hold_for(db, next).await {
                Ok(out) => (input, output) = (next.input_tokens, out),
                Err(Error::InsufficientCredits { .. }) => break,
                Err(e) => return Err(e),
            }
        }
        let overshoot = rng2.random_bool(0.05);
        let used = |cap: u64, rng: &mut StdRng| {
            if overshoot {
                cap + rng.random_range(1..500)
            } else {
                rng.random_range(0..=cap)
            }
        };
        let usage = Usage {
            input_tokens: used(input, &mut rng2),
            output_tokens: used(output, &mut rng2),
        };
        run.record(usage);
        if rng2.random_bool(0.05) {
            break; // a model error
        }
    }
    assert!(run.charge() <= run.held());
    match rng2.random_range(0..10) {
        0 => return Ok(Some((run.held(), 0))), // abandoned: reconcile expires it
        1 => run.settle_failed(db, "model failed").await?,
        _ => {
            let tx = db.tenant(farm).await?;
            let s = run
                .settle(&tx, RunEnd::Succeeded { summary: None })
                .await?
                .expect("settled once");
            tx.commit().await?;
            assert_eq!(s.credits_reserved, run.held());
            assert_eq!(s.credits_refunded, s.credits_reserved - s.credits_charged);
            assert!(s.balance_after >= 0);
        }
    }
    // settling again changes nothing
    let tx = db.tenant(farm).await?;
    assert!(
        run.settle(&tx, RunEnd::Failed { error: "again" })
            .await?
            .is_none()
    );
    tx.commit().await?;
    Ok(Some((run.held(), run.charge())))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_usage_never_charges_above_the_hold() {
    let db = TestDb::new().await.unwrap();
    let pool = db.app_pool(8).unwrap();
    // A few farms with small balances so that runs are shrunk, stopped and refused.
    let mut farms = Vec::new();
    for i in 0..4 {
        farms.push(
            db.farm(&format!("prop-{i}"), [0, 40, 3_000, 1_000_000][i])
                .await
                .unwrap(),
        );
    }
    let workers: Vec<_> = (0..8u64)
        .map(|w| {
            let (pool, farms) = (pool.clone(), farms.clone());
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(0x5eed_0000 + w);
                let (mut opened, mut refused) = (0, 0);
                for _ in 0..250 {
                    let farm = farms[rng.random_range(0..farms.len())];
                    match random_run(&pool, farm, &mut rng).await.unwrap() {
                        Some((held, charged)) => {
                            assert!(charged <= held);
                            opened += 1;
                        }
                        None => refused += 1,
                    }
                }
                (opened, refused)
            })
        })
        .collect();
    let (mut opened, mut refused) = (0, 0);
    for w in workers {
        let (o, r) = w.await.unwrap();
        (opened, refused) = (opened + o, refused + r);
    }
    assert_eq!(opened + refused, 2000);
    assert!(
        opened > 500 && refused > 50,
        "{opened} opened, {refused} refused"
    );
    let owner = db.owner_client().await.unwrap();
    let mismatched: i64 = owner
        .query_one(
            "SELECT count(*) FROM ai_runs WHERE status <> 'reserved'
               AND credits_charged > credits_reserved",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(mismatched, 0);
    for farm in farms {
        // reconcile returns every abandoned hold in full
        let tx = pool.tenant(farm).await.unwrap();
        credits::expire_reservations(&tx, Utc::now() + chrono::Duration::seconds(1))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert!(audit_holds(&pool, farm).await, "farm {farm}");
        let row = owner
            .query_one(
                "SELECT f.credit_balance, (SELECT count(*) FROM ai_runs WHERE farm_id = f.id AND status = 'reserved'),
                        (SELECT coalesce(sum(-delta), 0)::bigint FROM credit_ledger WHERE farm_id = f.id AND entry_type = 'reserve'),
                        (SELECT coalesce(sum(credits_reserved), 0)::bigint FROM ai_runs WHERE farm_id = f.id)
                   FROM farms f WHERE f.id = $1",
                &[&farm],
            )
            .await
            .unwrap();
        let (bal, open, legs, runs): (i64, i64, i64, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        assert!(bal >= 0);
        assert_eq!(open, 0, "every abandoned hold expired");
        assert_eq!(legs, runs, "held = the hold legs, over every run");
    }
}

/// Migration 0092's rule, for the migrations after it too: a function of ours that sets a
/// search_path puts pg_temp last, so no caller's temporary table shadows the schema's.
#[tokio::test]
async fn every_function_that_sets_a_search_path_puts_pg_temp_last() {
    let db = TestDb::new().await.unwrap();
    let owner = db.owner_client().await.unwrap();
    let rows = owner
        .query(
            "SELECT p.oid::regprocedure::text, c
               FROM pg_proc p, unnest(p.proconfig) c
              WHERE p.pronamespace = 'public'::regnamespace AND c LIKE 'search_path=%'
                AND c <> 'search_path=public, pg_temp'
              ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    let wrong: Vec<String> = rows
        .iter()
        .map(|r| format!("{} ({})", r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect();
    assert!(wrong.is_empty(), "{wrong:?}");
    let definers_without_a_path = owner
        .query(
            "SELECT p.oid::regprocedure::text FROM pg_proc p
              WHERE p.pronamespace = 'public'::regnamespace AND p.prosecdef
                AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%')",
            &[],
        )
        .await
        .unwrap();
    assert!(
        definers_without_a_path.is_empty(),
        "{:?}",
        definers_without_a_path
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
    );
}
