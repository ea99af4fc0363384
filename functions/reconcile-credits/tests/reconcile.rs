//! reconcile-credits against a real PostgreSQL: the scheduled handler, concurrent runs, and
//! runs settling while the job expires.

use std::{collections::HashMap, time::Duration};

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::Utc;
use farmops::{
    credits::{self, Feature, NewRun, Settlement},
    db::{Db, Type},
    reconcile::{self, ReconcileConfig},
    testing::{TestDb, eventbridge_scheduled_event},
};
use lambda_runtime::{Context, LambdaEvent};
use reconcile_credits::{State, handle};
use uuid::Uuid;

async fn reserve(db: &Db, farm: Uuid, amount: i64) -> Uuid {
    let tx = db.tenant(farm).await.unwrap();
    let r = credits::reserve_credits(
        &tx,
        &NewRun {
            feature: Feature::Chat,
            model: "offline-farm-assistant",
            user_id: Some("u"),
            credits: amount,
            request_summary: None,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    r.run_id
}

async fn audit_holds(db: &Db, farm: Uuid) -> credits::LedgerAudit {
    let tx = db.tenant(farm).await.unwrap();
    let a = credits::audit_ledger(&tx).await.unwrap();
    assert!(a.holds, "ledger invariant broken: {a:?}");
    a
}

/// (status, settle legs, expire legs) of every run of a farm.
async fn runs(db: &TestDb, farm: Uuid) -> HashMap<Uuid, (String, i64, i64)> {
    let owner = db.owner_client().await.unwrap();
    owner
        .query_typed(
            "SELECT r.id, r.status,
                    count(l.id) FILTER (WHERE l.entry_type = 'settle'),
                    count(l.id) FILTER (WHERE l.entry_type = 'expire')
               FROM ai_runs r LEFT JOIN credit_ledger l ON l.ai_run_id = r.id
              WHERE r.farm_id = $1 GROUP BY r.id, r.status",
            &[(&farm, Type::UUID)],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3))))
        .collect()
}

fn scheduled_event() -> LambdaEvent<EventBridgeEvent> {
    let payload: EventBridgeEvent =
        serde_json::from_value(eventbridge_scheduled_event()).expect("the real event parses");
    LambdaEvent::new(payload, Context::default())
}

#[tokio::test]
async fn handler_accepts_the_scheduled_event_and_expires_only_stale_reservations() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("f", 100).await.unwrap();
    let run = reserve(&db.app, farm, 30).await;

    // default max run (900 s): a reservation made just now is a run in progress, not touched
    let state = State {
        db: db.app.clone(),
        config: ReconcileConfig::from_lookup(|_| None).unwrap(),
        alerts: None,
        signer: None,
    };
    let out = handle(&state, scheduled_event()).await.unwrap();
    assert_eq!(
        (out.farms, out.runs_expired, out.credits_refunded),
        (0, 0, 0)
    );
    assert_eq!(runs(&db, farm).await[&run].0, "reserved");

    // a max run of zero makes it stale: expired and refunded in full, once; the farm's
    // evidence chain head is signed through the real KMS client (against the local stub)
    let kms = farmops::testing::kms::KmsStub::start([21; 32])
        .await
        .unwrap();
    let state = State {
        db: db.app.clone(),
        config: ReconcileConfig {
            max_run: Duration::ZERO,
            checkpoint_min_rows: 1,
            checkpoint_max_age: Duration::from_secs(86_400),
        },
        alerts: None,
        signer: Some(std::sync::Arc::new(kms.signer().await)),
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    let out = handle(&state, scheduled_event()).await.unwrap();
    assert_eq!(
        (out.farms, out.runs_expired, out.credits_refunded),
        (1, 1, 30)
    );
    assert_eq!(out.evidence_checkpoints_signed, 1);
    assert!(
        kms.requests()
            .iter()
            .any(|(target, body)| target == "TrentService.Sign" && body["MessageType"] == "RAW"),
        "signed with kms:Sign"
    );
    assert_eq!(runs(&db, farm).await[&run], ("expired".into(), 0, 1));
    assert_eq!(audit_holds(&db.app, farm).await.credit_balance, 100);
    let again = handle(&state, scheduled_event()).await.unwrap();
    assert_eq!(
        (again.runs_expired, again.credits_refunded),
        (0, 0),
        "idempotent"
    );
    // the outcome is what the Lambda returns: it serialises
    assert_eq!(serde_json::to_value(&out).unwrap()["runs_expired"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_concurrent_runs_over_100_stale_reservations_refund_each_once() {
    let db = TestDb::new().await.unwrap();
    let mut farms = Vec::new();
    for i in 0..5 {
        let farm = db.farm(&format!("farm {i}"), 1000).await.unwrap();
        for n in 0..20 {
            reserve(&db.app, farm, 1 + n % 7).await;
        }
        farms.push(farm);
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    let cutoff = Utc::now();
    let pool = db.app_pool(8).unwrap();
    let (a, b) = futures::join!(
        reconcile::run_at(&pool, cutoff),
        reconcile::run_at(&pool, cutoff)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.farms_failed + b.farms_failed, 0);
    assert_eq!(a.runs_expired + b.runs_expired, 100, "{a:?} {b:?}");
    let reserved_total: i64 = (0..20).map(|n| 1 + n % 7).sum::<i64>() * 5;
    assert_eq!(a.credits_refunded + b.credits_refunded, reserved_total);
    for farm in farms {
        for (id, (status, settles, expires)) in runs(&db, farm).await {
            assert_eq!(
                (status.as_str(), settles, expires),
                ("expired", 0, 1),
                "run {id}"
            );
        }
        assert_eq!(audit_holds(&db.app, farm).await.credit_balance, 1000);
    }
    let third = reconcile::run_at(&pool, Utc::now()).await.unwrap();
    assert_eq!((third.farms, third.runs_expired), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_settling_while_reconcile_runs_is_settled_or_expired_never_both() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("race", 10_000).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..60 {
        ids.push(reserve(&db.app, farm, 10).await);
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    let cutoff = Utc::now();
    let pool = db.app_pool(8).unwrap();
    let settling = async {
        let mut settled = 0;
        for id in &ids {
            let tx = pool.tenant(farm).await.unwrap();
            let s = credits::settle_run(
                &tx,
                *id,
                &Settlement {
                    credits_charged: 4,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
            settled += usize::from(s.is_some());
        }
        settled
    };
    let (settled, r1, r2) = futures::join!(
        settling,
        reconcile::run_at(&pool, cutoff),
        reconcile::run_at(&pool, cutoff)
    );
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    // whatever reconcile skipped because a settle held the row is closed by now, or left for
    // the next pass: run it once more so every run ends closed
    let r3 = reconcile::run_at(&pool, cutoff).await.unwrap();
    let expired = r1.runs_expired + r2.runs_expired + r3.runs_expired;
    assert_eq!(settled as i64 + expired, 60, "each run closed exactly once");
    let all = runs(&db, farm).await;
    let (mut n_settled, mut n_expired) = (0, 0);
    for (id, (status, settles, expires)) in all {
        match status.as_str() {
            "succeeded" => {
                assert_eq!((settles, expires), (1, 0), "run {id}");
                n_settled += 1;
            }
            "expired" => {
                assert_eq!((settles, expires), (0, 1), "run {id}");
                n_expired += 1;
            }
            other => panic!("run {id} left {other}"),
        }
    }
    assert_eq!(
        (n_settled, n_expired),
        (settled, usize::try_from(expired).unwrap())
    );
    let a = audit_holds(&db.app, farm).await;
    assert_eq!(a.credit_balance, 10_000 - 4 * settled as i64);
}

/// The scheduled step publishes the low-balance alerts the debits left in the outbox, through
/// the real EventBridge client (to the local stub); a second run has nothing left to send.
#[tokio::test]
async fn the_reconcile_step_publishes_low_balance_alerts() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("alerting", 100).await.unwrap();
    db.member(farm, "owner", "owner").await.unwrap();
    let tx = db.app.tenant(farm).await.unwrap();
    tx.query("SELECT set_credit_alerts('owner', '[50]'::jsonb)", &[])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    reserve(&db.app, farm, 60).await;
    let stub = farmops::testing::eventbridge::EventBridgeStub::start(vec![])
        .await
        .unwrap();
    let state = State {
        db: db.app.clone(),
        config: ReconcileConfig::from_lookup(|_| None).unwrap(),
        alerts: Some(stub.bus("farmops-alerts").await),
        signer: None,
    };
    let out = handle(&state, scheduled_event()).await.unwrap();
    assert_eq!((out.alerts_sent, out.alerts_failed), (1, 0));
    let requests = stub.requests();
    assert_eq!(requests.len(), 1);
    let detail: serde_json::Value =
        serde_json::from_str(requests[0]["Entries"][0]["Detail"].as_str().unwrap()).unwrap();
    assert_eq!(
        (&detail["threshold"], &detail["balance"]),
        (&serde_json::json!(50), &serde_json::json!(40))
    );
    let again = handle(&state, scheduled_event()).await.unwrap();
    assert_eq!((again.alerts_sent, again.alerts_failed), (0, 0));
}
