//! Paystack top-ups (migration 0081) against a real PostgreSQL, connected as `farmops_billing`:
//! one grant per reference under 200 concurrent deliveries, refusals that grant nothing, a
//! refund that never takes the balance below zero, and roles that cannot reach around the doors.

use std::sync::Arc;

use chrono::Utc;
use farmops::{
    Error,
    config::Secret,
    credits::{self, Feature, NewRun, Settlement},
    payments::{self, PaymentVerdict, Receipt, paystack},
    testing::TestDb,
};
use serde_json::{Value, json};
use tokio_postgres::error::SqlState;
use uuid::Uuid;

const SECRET: &str = "sk_test_farmops_local";

fn secret() -> Secret {
    Secret::new(SECRET)
}

/// Paystack's `charge.success` shape (shared/fixtures/paystack) for our farm and pack.
fn charge(reference: &str, farm: &str, pack: &str, amount: i64) -> Value {
    let mut event: Value =
        serde_json::from_str(include_str!("../../fixtures/paystack/charge-success.json")).unwrap();
    event["data"]["reference"] = reference.into();
    event["data"]["amount"] = amount.into();
    event["data"]["metadata"] = json!({"farm_id": farm, "pack": pack});
    event
}

fn refund(reference: &str, refund_reference: &str, amount_kobo: i64) -> Value {
    let mut event: Value = serde_json::from_str(include_str!(
        "../../fixtures/paystack/refund-processed.json"
    ))
    .unwrap();
    event["data"]["transaction_reference"] = reference.into();
    event["data"]["refund_reference"] = refund_reference.into();
    event["data"]["amount"] = amount_kobo.to_string().into();
    event
}

/// Delivers `body` signed with our key, as Paystack would.
async fn deliver(db: &farmops::db::Db, body: &[u8]) -> Result<Receipt, Error> {
    let signature = paystack::sign(body, SECRET.as_bytes());
    payments::record_paystack_event(db, body, Some(&signature), &secret(), Utc::now()).await
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    let owner = db.owner_client().await.unwrap();
    owner.query_one(sql, &[]).await.unwrap().get(0)
}

async fn balance(db: &TestDb, farm: Uuid) -> i64 {
    let owner = db.owner_client().await.unwrap();
    owner
        .query_one("SELECT credit_balance FROM farms WHERE id = $1", &[&farm])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_deliveries_of_one_charge_grant_once() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("buyer", 0).await.unwrap();
    db.pack("starter", 500, 500_000).await.unwrap();
    let pool = db.billing_pool(64).unwrap();
    // open the connections first, so the deliveries really race
    let warm: Vec<_> = futures::future::join_all((0..64).map(|_| pool.client())).await;
    drop(warm.into_iter().collect::<Result<Vec<_>, _>>().unwrap());
    let body = Arc::new(charge("ps-race-1", &farm.to_string(), "starter", 500_000).to_string());
    let barrier = Arc::new(tokio::sync::Barrier::new(200));
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let (pool, body, barrier) = (pool.clone(), body.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                deliver(&pool, body.as_bytes()).await
            })
        })
        .collect();
    let mut verdicts = std::collections::HashMap::new();
    for t in tasks {
        let receipt = t.await.unwrap().expect("every delivery is answered");
        *verdicts.entry(receipt.verdict).or_insert(0) += 1;
    }
    assert_eq!(
        verdicts.get(&PaymentVerdict::Granted),
        Some(&1),
        "{verdicts:?}"
    );
    assert_eq!(
        verdicts.get(&PaymentVerdict::Duplicate),
        Some(&199),
        "{verdicts:?}"
    );
    assert_eq!(balance(&db, farm).await, 500);
    assert_eq!(
        count(&db, "SELECT count(*) FROM credit_lots").await,
        1,
        "one lot"
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM credit_ledger WHERE entry_type = 'grant'"
        )
        .await,
        1,
        "one grant leg"
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM payment_events").await,
        200,
        "every delivery recorded"
    );
    let tx = db.owner.tenant(farm).await.unwrap();
    assert!(credits::audit_ledger(&tx).await.unwrap().holds);
}

#[tokio::test]
async fn refused_deliveries_grant_nothing_and_say_why() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("buyer", 0).await.unwrap();
    db.pack("starter", 500, 500_000).await.unwrap();
    let billing = db.billing_pool(2).unwrap();
    let f = farm.to_string();
    let good = charge("ps-1", &f, "starter", 500_000).to_string();
    let sign = |b: &str| paystack::sign(b.as_bytes(), SECRET.as_bytes());

    // the signature cases: 401, nothing written
    let altered = good.replace("500000", "5000000");
    let other_key = paystack::sign(good.as_bytes(), b"sk_test_someone_else");
    for (name, body, signature) in [
        ("wrong key", good.as_str(), Some(other_key.as_str())),
        ("missing header", good.as_str(), None),
        (
            "body altered after signing",
            altered.as_str(),
            Some(&*sign(&good)),
        ),
        ("not hex", good.as_str(), Some("deadbeef")),
    ] {
        let result = payments::record_paystack_event(
            &billing,
            body.as_bytes(),
            signature,
            &secret(),
            Utc::now(),
        )
        .await;
        match result {
            Err(e @ Error::InvalidSignature(_)) => {
                assert_eq!((e.status(), e.code()), (401, "invalid_signature"), "{name}")
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    assert_eq!(count(&db, "SELECT count(*) FROM payment_events").await, 0);

    // signed, but not acceptable: 200 with the verdict, recorded
    let mut wrong_currency = charge("ps-2", &f, "starter", 500_000);
    wrong_currency["data"]["currency"] = "USD".into();
    let mut failed = charge("ps-3", &f, "starter", 500_000);
    failed["data"]["status"] = "failed".into();
    let cases: Vec<(&str, String, PaymentVerdict)> = vec![
        (
            "wrong currency",
            wrong_currency.to_string(),
            PaymentVerdict::WrongCurrency,
        ),
        (
            "amount not the pack's price",
            charge("ps-4", &f, "starter", 499_999).to_string(),
            PaymentVerdict::AmountMismatch,
        ),
        (
            "unknown pack",
            charge("ps-5", &f, "enterprise", 500_000).to_string(),
            PaymentVerdict::UnknownPack,
        ),
        (
            "unknown farm",
            charge("ps-6", &Uuid::new_v4().to_string(), "starter", 500_000).to_string(),
            PaymentVerdict::UnknownFarm,
        ),
        (
            "farm id not a uuid",
            charge("ps-7", "my-farm", "starter", 500_000).to_string(),
            PaymentVerdict::UnknownFarm,
        ),
        (
            "the global farm",
            charge(
                "ps-8",
                "00000000-0000-0000-0000-000000000000",
                "starter",
                500_000,
            )
            .to_string(),
            PaymentVerdict::UnknownFarm,
        ),
        (
            "not successful",
            failed.to_string(),
            PaymentVerdict::NotSuccessful,
        ),
        (
            "malformed JSON",
            "{\"event\": \"charge.success\", ".into(),
            PaymentVerdict::Malformed,
        ),
        (
            "a NUL byte, not JSON",
            "\u{0}\u{ff}".into(),
            PaymentVerdict::Malformed,
        ),
        (
            "another event",
            json!({"event": "transfer.success", "data": {"reference": "t-1"}}).to_string(),
            PaymentVerdict::Ignored,
        ),
        (
            "refund of a payment never granted",
            refund("ps-4", "rf-1", 500_000).to_string(),
            PaymentVerdict::UnknownReference,
        ),
    ];
    let n = cases.len() as i64;
    for (name, body, verdict) in cases {
        let receipt = deliver(&billing, body.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(receipt.verdict, verdict, "{name}: {receipt:?}");
        assert_eq!(receipt.credits, None, "{name}");
        let owner = db.owner_client().await.unwrap();
        let row = owner
            .query_one(
                "SELECT verdict, detail, raw FROM payment_events WHERE id = $1",
                &[&receipt.event_id],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), verdict.as_str(), "{name}");
        assert!(
            row.get::<_, Option<String>>(1).is_some(),
            "{name}: a reason"
        );
        assert!(!row.get::<_, String>(2).is_empty(), "{name}: the raw body");
    }
    // bytes that are not UTF-8, as large as a body may be: recorded (as text), never a 500
    let bytes = vec![0xffu8; payments::MAX_EVENT_BYTES];
    let receipt = deliver(&billing, &bytes).await.unwrap();
    assert_eq!(receipt.verdict, PaymentVerdict::Malformed);
    assert_eq!(balance(&db, farm).await, 0);
    assert_eq!(count(&db, "SELECT count(*) FROM credit_lots").await, 0);
    assert_eq!(
        count(&db, "SELECT count(*) FROM payment_events").await,
        n + 1
    );

    // and the good one, once
    assert_eq!(
        deliver(&billing, good.as_bytes()).await.unwrap().verdict,
        PaymentVerdict::Granted
    );
    assert_eq!(balance(&db, farm).await, 500);
    let listed = payments::payment_events(&db.owner, Some(farm), false)
        .await
        .unwrap();
    assert!(
        listed
            .iter()
            .any(|e| e.verdict == PaymentVerdict::Granted && e.credits == Some(500))
    );
    assert!(
        listed
            .iter()
            .all(|e| e.farm_id == Some(farm) && e.raw.is_none())
    );
}

#[tokio::test]
async fn a_refund_after_spending_takes_back_what_is_left_and_records_the_shortfall() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("buyer", 0).await.unwrap();
    db.pack("starter", 500, 500_000).await.unwrap();
    let billing = db.billing_pool(2).unwrap();
    let paid = deliver(
        &billing,
        charge("ps-10", &farm.to_string(), "starter", 500_000)
            .to_string()
            .as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(
        (paid.verdict, paid.credits, paid.balance),
        (PaymentVerdict::Granted, Some(500), Some(500))
    );
    // the farm spends 300 of its 500 credits
    let tx = db.app.tenant(farm).await.unwrap();
    let run = credits::reserve_credits(
        &tx,
        &NewRun {
            feature: Feature::Chat,
            model: "offline-farm-assistant",
            user_id: Some("u"),
            credits: 300,
            request_summary: Some("spend"),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let tx = db.app.tenant(farm).await.unwrap();
    credits::settle_run(
        &tx,
        run.run_id,
        &Settlement {
            credits_charged: 300,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(balance(&db, farm).await, 200);

    // the whole payment is refunded
    let body = refund("ps-10", "rf-10", 500_000).to_string();
    let refunded = deliver(&billing, body.as_bytes()).await.unwrap();
    assert_eq!(refunded.verdict, PaymentVerdict::Refunded, "{refunded:?}");
    assert_eq!(refunded.credits, Some(200), "what was left");
    assert_eq!(refunded.shortfall, Some(300), "already spent");
    assert_eq!(refunded.balance, Some(0));
    assert_eq!(balance(&db, farm).await, 0, "never below zero");
    // redelivered: nothing more
    let again = deliver(&billing, body.as_bytes()).await.unwrap();
    assert_eq!(again.verdict, PaymentVerdict::Duplicate);
    assert_eq!(balance(&db, farm).await, 0);
    let owner = db.owner_client().await.unwrap();
    let row = owner
        .query_one(
            "SELECT credits, shortfall, lot_id FROM payment_events WHERE verdict = 'refunded'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, i64>(0), row.get::<_, i64>(1)),
        (200, 300),
        "the shortfall is recorded"
    );
    assert_eq!(row.get::<_, i64>(2), paid.lot_id.unwrap());
    let legs = owner
        .query_one(
            "SELECT count(*), sum(delta)::bigint FROM credit_ledger
              WHERE entry_type = 'adjust' AND farm_id = $1",
            &[&farm],
        )
        .await
        .unwrap();
    assert_eq!((legs.get::<_, i64>(0), legs.get::<_, i64>(1)), (1, -200));
    let tx = db.owner.tenant(farm).await.unwrap();
    assert!(credits::audit_ledger(&tx).await.unwrap().holds);
}

/// A refund, partial or full, revokes the payment's lot (issue 17: "claw back what is left
/// of that lot"): once per payment, never more than the payment.
#[tokio::test]
async fn a_refund_revokes_the_lot_once() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("buyer", 0).await.unwrap();
    db.pack("starter", 500, 500_000).await.unwrap();
    let billing = db.billing_pool(2).unwrap();
    let body = charge("ps-20", &farm.to_string(), "starter", 500_000).to_string();
    deliver(&billing, body.as_bytes()).await.unwrap();
    // more than was paid: refused, nothing taken
    let r = deliver(
        &billing,
        refund("ps-20", "rf-20", 500_001).to_string().as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(r.verdict, PaymentVerdict::AmountMismatch);
    assert_eq!(balance(&db, farm).await, 500);
    // ₦1,000 of ₦5,000 refunded: the lot is revoked, all that is left taken back
    let r = deliver(
        &billing,
        refund("ps-20", "rf-21", 100_000).to_string().as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(
        (r.verdict, r.credits, r.shortfall, r.balance),
        (PaymentVerdict::Refunded, Some(500), Some(0), Some(0))
    );
    // another refund of the same payment, or the same one again: nothing more
    for rf in ["rf-22", "rf-21"] {
        let r = deliver(
            &billing,
            refund("ps-20", rf, 100_000).to_string().as_bytes(),
        )
        .await
        .unwrap();
        assert_eq!(r.verdict, PaymentVerdict::Duplicate, "{rf}");
    }
    assert_eq!(balance(&db, farm).await, 0);
    let owner = db.owner_client().await.unwrap();
    let revoked: Option<chrono::DateTime<Utc>> = owner
        .query_one(
            "SELECT revoked_at FROM credit_lots WHERE farm_id = $1",
            &[&farm],
        )
        .await
        .unwrap()
        .get(0);
    assert!(revoked.is_some(), "the lot is revoked");
}

fn refused(result: Result<impl std::fmt::Debug, tokio_postgres::Error>, what: &str) {
    match result {
        Ok(v) => panic!("{what}: expected a refusal, got {v:?}"),
        Err(e) => assert_eq!(
            e.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{what}: {e}"
        ),
    }
}

#[tokio::test]
async fn neither_the_app_nor_billing_can_reach_around_the_doors() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("buyer", 0).await.unwrap();
    db.pack("starter", 500, 500_000).await.unwrap();
    let f = farm.to_string();
    let door = format!(
        "SELECT paystack_record_charge('{{}}', 'ps-x', '{f}', 'starter', 500000, 'NGN', 'success')"
    );

    // the application role: no door, no table
    let app = db.app_client().await.unwrap();
    app.batch_execute(&format!("SELECT set_config('app.farm_id', '{f}', false)"))
        .await
        .unwrap();
    for (what, sql) in [
        ("app: the charge door", door.clone()),
        (
            "app: the refund door",
            "SELECT paystack_record_refund('{}', 'ps-x', 'rf', 1, 'NGN')".into(),
        ),
        (
            "app: the unusable door",
            "SELECT paystack_record_unusable('{}', 'x', 'y', 'ignored', 'z')".into(),
        ),
        (
            "app: insert an event",
            "INSERT INTO payment_events (verdict, raw) VALUES ('ignored', '{}')".into(),
        ),
        (
            "app: read the events",
            "SELECT * FROM payment_events".into(),
        ),
        (
            "app: insert a pack",
            "INSERT INTO credit_packs VALUES ('free', 1000000, 1)".into(),
        ),
        (
            "app: reprice a pack",
            "UPDATE credit_packs SET price_kobo = 1".into(),
        ),
        (
            "app: add a lot",
            format!(
                "SELECT * FROM credit_add_lot('{f}', 5, 'paid', 0, now(), NULL, 'payment', 'k', 'a', 'b')"
            ),
        ),
    ] {
        refused(app.batch_execute(&sql).await, what);
    }

    // the billing role: its doors only
    let billing = db.billing_client().await.unwrap();
    for (what, sql) in [
        (
            "billing: a ledger leg",
            format!(
                "INSERT INTO credit_ledger (farm_id, entry_type, delta, balance_after, actor, reason)
                 VALUES ('{f}', 'grant', 5, 5, 'x', 'y')"
            ),
        ),
        (
            "billing: the balance",
            format!("UPDATE farms SET credit_balance = 5 WHERE id = '{f}'"),
        ),
        (
            "billing: add a lot",
            format!(
                "SELECT * FROM credit_add_lot('{f}', 5, 'paid', 0, now(), NULL, 'payment', 'k', 'a', 'b')"
            ),
        ),
        (
            "billing: claw back",
            format!("SELECT * FROM credit_claw_back_lot('{f}', 1, 5, 'a', 'b')"),
        ),
        (
            "billing: a lot row",
            format!(
                "INSERT INTO credit_lots (farm_id, category, priority, amount, remaining, effective_at,
                                          source, idempotency_key)
                 VALUES ('{f}', 'paid', 0, 5, 5, now(), 'payment', 'k')"
            ),
        ),
        (
            "billing: insert an event",
            "INSERT INTO payment_events (verdict, raw) VALUES ('granted', '{}')".into(),
        ),
        (
            "billing: reprice a pack",
            "UPDATE credit_packs SET price_kobo = 1".into(),
        ),
        ("billing: read the farms", "SELECT * FROM farms".into()),
    ] {
        refused(billing.batch_execute(&sql).await, what);
    }
    // ... and through the door, the pack's price decides
    billing.batch_execute(&door).await.unwrap();
    assert_eq!(balance(&db, farm).await, 500);

    // nobody edits the record, the owner included
    let owner = db.owner_client().await.unwrap();
    for sql in [
        "UPDATE payment_events SET verdict = 'ignored'",
        "DELETE FROM payment_events",
        "TRUNCATE payment_events",
    ] {
        refused(owner.batch_execute(sql).await, sql);
    }
    // a second grant of one reference is refused by the schema itself
    let err = owner
        .batch_execute(&format!(
            "INSERT INTO payment_events (reference, farm_id, verdict, lot_id, credits, raw)
             SELECT 'ps-x', '{f}', 'granted', id, 500, '{{}}' FROM credit_lots LIMIT 1"
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNIQUE_VIOLATION), "{err}");
}
