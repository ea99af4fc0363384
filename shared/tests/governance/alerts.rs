//! Low-balance alerts (migrations 0086, 0087): one outbox row per fall below a threshold,
//! written in the transaction of the debit, exactly once under concurrency; re-armed by any
//! ledger leg that leaves the balance at or above it (a refund, a grant); thresholds only
//! through `set_credit_alerts`.

use std::sync::Arc;

use farmops::{
    Error,
    credits::{self, Feature, NewRun, Settlement},
    db::{Db, Type},
    testing::TestDb,
};
use uuid::Uuid;

use crate::sqlstate;

async fn set_alerts(
    db: &Db,
    farm: Uuid,
    actor: &str,
    thresholds: serde_json::Value,
) -> Result<serde_json::Value, Error> {
    let tx = db.tenant(farm).await?;
    let row = tx
        .query_one(
            "SELECT set_credit_alerts($1, $2)",
            &[(&actor, Type::TEXT), (&thresholds, Type::JSONB)],
        )
        .await?;
    tx.commit().await?;
    Ok(row.get(0))
}

fn run(credits: i64) -> NewRun<'static> {
    NewRun {
        feature: Feature::Chat,
        model: "offline-farm-assistant",
        user_id: Some("worker"),
        credits,
        request_summary: None,
    }
}

async fn hold(db: &Db, farm: Uuid, credits: i64) -> Result<Uuid, Error> {
    Ok(
        credits::reserve_credits_committed(db.tenant(farm).await?, &run(credits))
            .await?
            .run_id,
    )
}

async fn settle(db: &Db, farm: Uuid, run: Uuid, charged: i64) {
    let tx = db.tenant(farm).await.unwrap();
    credits::settle_run(
        &tx,
        run,
        &Settlement {
            credits_charged: charged,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

/// (threshold, balance) of every outbox row, oldest first.
async fn outbox(db: &TestDb, farm: Uuid) -> Vec<(i64, i64)> {
    let owner = db.owner_client().await.unwrap();
    owner
        .query(
            "SELECT threshold, balance FROM credit_alert_outbox WHERE farm_id = $1 ORDER BY ledger_id, threshold DESC",
            &[&farm],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

async fn owner_tx(db: &TestDb, farm: Uuid) -> farmops::db::TenantTx {
    db.owner.tenant(farm).await.unwrap()
}

/// (threshold, armed) of the farm's thresholds, highest first.
async fn armed(db: &TestDb, farm: Uuid) -> Vec<(i64, bool)> {
    let owner = db.owner_client().await.unwrap();
    owner
        .query(
            "SELECT threshold, armed FROM credit_alert_thresholds WHERE farm_id = $1 ORDER BY threshold DESC",
            &[&farm],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// `n` holds of `credits` each at once, each on its own connection of a 64-connection pool,
/// released together by a barrier; their run ids.
async fn concurrent_holds(db: &TestDb, farm: Uuid, n: usize, credits: i64) -> Vec<Uuid> {
    let pool = db.app_pool(64).unwrap();
    let warm: Vec<_> = futures::future::join_all((0..n).map(|_| pool.client())).await;
    drop(warm);
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (pool, barrier) = (pool.clone(), Arc::clone(&barrier));
            tokio::spawn(async move {
                let tx = pool.tenant(farm).await?;
                barrier.wait().await;
                credits::reserve_credits_committed(tx, &run(credits)).await
            })
        })
        .collect();
    let mut runs = Vec::new();
    for t in futures::future::join_all(tasks).await {
        runs.push(t.unwrap().unwrap().run_id);
    }
    runs
}

/// Settles `runs` at once (each charging `charged`), each in its own transaction.
async fn concurrent_settles(db: &TestDb, farm: Uuid, runs: &[Uuid], charged: i64) {
    let pool = db.app_pool(64).unwrap();
    let tasks: Vec<_> = runs
        .iter()
        .map(|&r| {
            let pool = pool.clone();
            tokio::spawn(async move { settle(&pool, farm, r, charged).await })
        })
        .collect();
    for t in futures::future::join_all(tasks).await {
        t.unwrap();
    }
}

/// 64 concurrent debits cross two thresholds: one outbox row per crossing. A threshold
/// re-arms on ANY leg that leaves the balance at or above it (0087): settle refunds (even
/// concurrent ones), an expired run's refund, a grant exactly reaching it; refunds that stay
/// below re-arm nothing; every re-armed crossing writes exactly one more row.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_debits_cross_two_thresholds_once_each() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("alerts", 200).await.unwrap();
    db.member(farm, "owner", "owner").await.unwrap();
    db.member(farm, "worker", "worker").await.unwrap();
    let set = set_alerts(&db.app, farm, "owner", serde_json::json!([100, 20]))
        .await
        .unwrap();
    assert_eq!(
        set,
        serde_json::json!({"thresholds": [{"threshold": 100, "armed": true}, {"threshold": 20, "armed": true}]})
    );
    let runs = concurrent_holds(&db, farm, 64, 3).await;
    // 200 - 64 x 3 = 8: below 100 once, below 20 once
    let rows = outbox(&db, farm).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0].0, 100);
    assert!(rows[0].1 < 100 && rows[0].1 >= 97, "{rows:?}");
    assert_eq!(rows[1].0, 20);
    assert!(rows[1].1 < 20 && rows[1].1 >= 17, "{rows:?}");
    assert_eq!(armed(&db, farm).await, [(100, false), (20, false)]);

    // refunds that leave the balance below a threshold do not re-arm it: 8 + 3 x 3 = 17
    for r in &runs[..3] {
        settle(&db.app, farm, *r, 0).await;
    }
    assert_eq!(armed(&db, farm).await, [(100, false), (20, false)]);
    // so the next debit (17 -> 16) writes nothing
    let small = hold(&db.app, farm, 1).await.unwrap();
    assert_eq!(outbox(&db, farm).await.len(), 2, "20 was not re-armed");
    settle(&db.app, farm, small, 1).await;

    // the other 61 refunds, concurrently: 16 + 61 x 3 = 199, back above both thresholds;
    // whichever refund leg got there re-armed them, and refunds never alert
    concurrent_settles(&db, farm, &runs[3..], 0).await;
    assert_eq!(armed(&db, farm).await, [(100, true), (20, true)]);
    assert_eq!(outbox(&db, farm).await.len(), 2);

    // the next crossing writes exactly one more (199 -> 99)
    let r = hold(&db.app, farm, 100).await.unwrap();
    let rows = outbox(&db, farm).await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[2], (100, 99));
    // its own refund brings the balance back to 199 and re-arms 100
    settle(&db.app, farm, r, 0).await;
    assert_eq!(armed(&db, farm).await, [(100, true), (20, true)]);

    // 64 concurrent debits again (199 -> 7): again one row per threshold crossed
    assert_eq!(concurrent_holds(&db, farm, 64, 3).await.len(), 64);
    let rows = outbox(&db, farm).await;
    assert_eq!(rows.len(), 5, "{rows:?}");
    assert_eq!(rows[3].0, 100);
    assert!(rows[3].1 < 100 && rows[3].1 >= 97, "{rows:?}");
    assert_eq!(rows[4].0, 20);
    assert!(rows[4].1 < 20 && rows[4].1 >= 17, "{rows:?}");

    // the reconcile's expiry refunds re-arm too (7 -> 199)
    let tx = db.app.tenant(farm).await.unwrap();
    let expired =
        credits::expire_reservations(&tx, chrono::Utc::now() + chrono::Duration::hours(1))
            .await
            .unwrap();
    tx.commit().await.unwrap();
    assert_eq!((expired.runs, expired.credits_refunded), (64, 192));
    assert_eq!(armed(&db, farm).await, [(100, true), (20, true)]);

    // every balance-lowering door alerts: the operator's negative adjustment crosses both in
    // one leg (199 -> 9), one row each
    let tx = owner_tx(&db, farm).await;
    credits::adjust_credits(&tx, -190, "operator", "correction")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let rows = outbox(&db, farm).await;
    assert_eq!(rows.len(), 7, "{rows:?}");
    assert_eq!(rows[5..], [(100, 9), (20, 9)]);

    // a grant bringing the balance back exactly to a threshold re-arms it (9 + 11 = 20), not
    // the one still above; the next step below writes one more
    let tx = owner_tx(&db, farm).await;
    credits::grant_credits(&tx, 11, "operator", "top-up")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(armed(&db, farm).await, [(100, false), (20, true)]);
    let tx = owner_tx(&db, farm).await;
    credits::adjust_credits(&tx, -1, "operator", "correction")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let rows = outbox(&db, farm).await;
    assert_eq!(rows.len(), 8, "{rows:?}");
    assert_eq!(rows[7], (20, 19));
    let tx = db.app.tenant(farm).await.unwrap();
    assert!(credits::audit_ledger(&tx).await.unwrap().holds);
}

#[tokio::test]
async fn thresholds_change_only_through_the_door() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("door", 50).await.unwrap();
    for (user, role) in [
        ("owner", "owner"),
        ("manager", "manager"),
        ("worker", "worker"),
        ("viewer", "viewer"),
    ] {
        db.member(farm, user, role).await.unwrap();
    }
    set_alerts(&db.app, farm, "manager", serde_json::json!([100, 20]))
        .await
        .unwrap();
    let refusals = [
        ("worker", serde_json::json!([10]), "FO403"),
        ("viewer", serde_json::json!([10]), "FO403"),
        ("stranger", serde_json::json!([10]), "FO404"),
        ("owner", serde_json::json!([20, 100]), "FO422"),
        ("owner", serde_json::json!([100, 100]), "FO422"),
        ("owner", serde_json::json!([0]), "FO422"),
        ("owner", serde_json::json!([-3]), "FO422"),
        ("owner", serde_json::json!([2.5]), "FO422"),
        ("owner", serde_json::json!(["10"]), "FO422"),
        ("owner", serde_json::json!({"t": 1}), "FO422"),
    ];
    for (actor, thresholds, code) in refusals {
        assert_eq!(
            sqlstate(set_alerts(&db.app, farm, actor, thresholds.clone()).await),
            code,
            "{actor} {thresholds}"
        );
    }
    let owner = db.owner_client().await.unwrap();
    let kept: Vec<(i64, bool)> = owner
        .query(
            "SELECT threshold, armed FROM credit_alert_thresholds WHERE farm_id = $1 ORDER BY threshold DESC",
            &[&farm],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    // nothing changed; 100 is above the balance (50), so it starts disarmed
    assert_eq!(kept, [(100, false), (20, true)]);
    for sql in [
        "INSERT INTO credit_alert_thresholds (farm_id, threshold, armed) VALUES (current_farm_id(), 5, true)",
        "UPDATE credit_alert_thresholds SET armed = true",
        "INSERT INTO credit_alert_outbox (farm_id, threshold, balance, ledger_id) VALUES (current_farm_id(), 5, 1, 1)",
        "DELETE FROM credit_alert_outbox",
        "UPDATE credit_alert_outbox SET balance = 0",
    ] {
        assert_eq!(
            sqlstate(crate::exec(&db.app, farm, sql).await),
            "42501",
            "{sql}"
        );
    }
    // an empty list removes them
    let set = set_alerts(&db.app, farm, "owner", serde_json::json!([]))
        .await
        .unwrap();
    assert_eq!(set, serde_json::json!({"thresholds": []}));
}

/// A farm with thresholds `[100, 50, 20]` whose balance then falls from 150 to 10: three
/// alerts.
async fn farm_with_three_alerts(db: &TestDb, name: &str) -> Uuid {
    let farm = db.farm(name, 150).await.unwrap();
    db.member(farm, "owner", "owner").await.unwrap();
    set_alerts(&db.app, farm, "owner", serde_json::json!([100, 50, 20]))
        .await
        .unwrap();
    for credits in [60, 40, 40] {
        hold(&db.app, farm, credits).await.unwrap();
    }
    assert_eq!(outbox(db, farm).await.len(), 3);
    farm
}

async fn outbox_farm(db: &TestDb) -> Uuid {
    let owner = db.owner_client().await.unwrap();
    owner
        .query_one("SELECT farm_id FROM credit_alert_outbox LIMIT 1", &[])
        .await
        .unwrap()
        .get(0)
}

async fn unsent(db: &TestDb) -> i64 {
    let owner = db.owner_client().await.unwrap();
    owner
        .query_one(
            "SELECT count(*) FROM credit_alert_outbox WHERE sent_at IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// Two dispatchers at once, through the real SDK client to the local stub: every row is
/// published exactly once, in the documented shape, and marked sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_dispatchers_racing_publish_each_alert_once() {
    let db = TestDb::new().await.unwrap();
    let farms = [
        farm_with_three_alerts(&db, "one").await,
        farm_with_three_alerts(&db, "two").await,
    ];
    let stub = farmops::testing::eventbridge::EventBridgeStub::start(vec![])
        .await
        .unwrap();
    let bus = stub.bus("farmops-alerts").await;
    let (a, b) = tokio::join!(
        credits::alerts::dispatch_alerts(&db.app, &bus),
        credits::alerts::dispatch_alerts(&db.app, &bus)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        (a.sent + b.sent, a.failed + b.failed),
        (6, 0),
        "{a:?} {b:?}"
    );
    assert_eq!(unsent(&db).await, 0);
    let mut ids = Vec::new();
    for request in stub.requests() {
        for entry in request["Entries"].as_array().unwrap() {
            assert_eq!(entry["Source"], "farmops.credits");
            assert_eq!(entry["DetailType"], "low_balance");
            assert_eq!(entry["EventBusName"], "farmops-alerts");
            let detail: serde_json::Value =
                serde_json::from_str(entry["Detail"].as_str().unwrap()).unwrap();
            let farm: Uuid = detail["farm_id"].as_str().unwrap().parse().unwrap();
            assert!(farms.contains(&farm), "{detail}");
            assert!([100, 50, 20].contains(&detail["threshold"].as_i64().unwrap()));
            assert!(detail["balance"].as_i64().unwrap() < detail["threshold"].as_i64().unwrap());
            assert!(detail["time"].is_string());
            ids.push(detail["id"].as_str().unwrap().to_string());
        }
    }
    ids.sort();
    let published = ids.len();
    ids.dedup();
    assert_eq!((published, ids.len()), (6, 6), "each row once");
    // a third run has nothing to send
    let c = credits::alerts::dispatch_alerts(&db.app, &bus)
        .await
        .unwrap();
    assert_eq!((c.sent, c.failed), (0, 0));
    assert_eq!(stub.requests().len(), 2, "one batch per farm");
}

/// A 500 from EventBridge leaves the rows unsent (the attempt counted, the error kept); the
/// next run sends them with the same ids.
#[tokio::test]
async fn a_failed_publish_leaves_the_alert_for_the_next_run() {
    let db = TestDb::new().await.unwrap();
    farm_with_three_alerts(&db, "flaky").await;
    let stub = farmops::testing::eventbridge::EventBridgeStub::start(vec![500])
        .await
        .unwrap();
    let bus = stub.bus("default").await;
    let first = credits::alerts::dispatch_alerts(&db.app, &bus)
        .await
        .unwrap();
    assert_eq!((first.sent, first.failed), (0, 3));
    // the evidence shows them waiting, then sent
    let shown = |sent: bool, attempts: i32| {
        let db = &db;
        async move {
            let farm = outbox_farm(db).await;
            let tx = db.app.tenant(farm).await.unwrap();
            let page = farmops::evidence::evidence_page(
                &tx,
                &farmops::evidence::EvidenceQuery::parse(|_| None).unwrap(),
            )
            .await
            .unwrap();
            assert_eq!(page.credit_alerts.len(), 3);
            assert!(
                page.credit_alerts
                    .iter()
                    .all(|a| a.sent_at.is_some() == sent && a.attempts == attempts),
                "{:?}",
                page.credit_alerts
            );
            let html = farmops::evidence::html::render(&page, None);
            assert_eq!(
                html.matches(&format!("class=\"credit-alert\" data-sent=\"{sent}\""))
                    .count(),
                3
            );
        }
    };
    shown(false, 1).await;
    assert_eq!(unsent(&db).await, 3);
    let owner = db.owner_client().await.unwrap();
    let row = owner
        .query_one(
            "SELECT min(attempts), bool_and(last_error IS NOT NULL) FROM credit_alert_outbox",
            &[],
        )
        .await
        .unwrap();
    assert_eq!((row.get::<_, i32>(0), row.get::<_, bool>(1)), (1, true));
    let second = credits::alerts::dispatch_alerts(&db.app, &bus)
        .await
        .unwrap();
    assert_eq!((second.sent, second.failed), (3, 0));
    assert_eq!(unsent(&db).await, 0);
    shown(true, 2).await;
    let ids = |r: &serde_json::Value| -> Vec<String> {
        r["Entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let d: serde_json::Value =
                    serde_json::from_str(e["Detail"].as_str().unwrap()).unwrap();
                d["id"].as_str().unwrap().to_string()
            })
            .collect()
    };
    let requests = stub.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        ids(&requests[0]),
        ids(&requests[1]),
        "the same ids on the retry"
    );
}
