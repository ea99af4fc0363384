//! The webhook under database faults (issue 20): the pool's backends killed mid-delivery and a
//! database that cannot be reached both answer 503 `database_unavailable` with `Retry-After`
//! (Paystack retries), never 500 and never a partial write: a charge is granted exactly when its
//! event is recorded, at most once; the same state (no cold start) records the redeliveries
//! once the database is back, each charge granted once.

use farmops::testing::{
    BILLING_PASSWORD,
    faults::{Killer, pool, unreachable_url},
};
use farmops_http::testing::check_unavailable;

use super::*;

const APP_NAME: &str = "billing-faults";

/// Delivers the signed charge `reference`; checks the answer against the document and, for a
/// 503, its shape.
async fn deliver(state: &State, farm: Uuid, reference: &str) -> (u16, Value) {
    let body = charge(reference, &farm.to_string(), "starter", 500_000).to_string();
    let signature = sign(body.as_bytes());
    let req = event(
        "POST",
        PATH,
        &[("x-paystack-signature", &signature)],
        body.as_bytes(),
        false,
    );
    let res = handle(state, req).await;
    assert_conforms_path("POST", PATH, &res);
    (check_unavailable(&res), body_json(&res))
}

/// The charge's recorded events and how many of them granted.
async fn recorded(f: &Fixture, reference: &str) -> (i64, i64) {
    let owner = f.db.owner_client().await.unwrap();
    let row = owner
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE verdict = 'granted')
               FROM payment_events WHERE reference = $1",
            &[&reference],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

async fn ledger_holds(f: &Fixture) -> bool {
    let tx = f.db.owner.tenant(f.farm).await.unwrap();
    farmops::credits::audit_ledger(&tx).await.unwrap().holds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_connections_answer_503_and_redeliveries_grant_once() {
    let f = fixture().await;
    let state = State {
        db: pool(&f.db.billing_url(), Some(APP_NAME)).unwrap(),
        secret: Secret::new(SECRET),
    };
    let killer = Killer::start(&f.db.name, APP_NAME).await.unwrap();
    let mut answered = Vec::new();
    for i in 0..200 {
        // every other request runs unharmed, however slow the machine
        killer.arm(i % 2 == 0);
        let reference = format!("ps-fault-{i}");
        let (status, body) = deliver(&state, f.farm, &reference).await;
        assert!(matches!(status, 200 | 503), "delivery {i}: {status} {body}");
        if status == 200 {
            assert_eq!(body["verdict"], "granted", "{body}");
        }
        answered.push((reference, status));
        let n = |s| answered.iter().filter(|a| a.1 == s).count();
        if n(503) >= 5 && n(200) >= 5 {
            break;
        }
    }
    let killed = killer.stop().await.unwrap();
    let unavailable: Vec<_> = answered.iter().filter(|a| a.1 == 503).collect();
    assert!(
        !unavailable.is_empty() && killed > 0,
        "no delivery met a killed connection ({killed} killed): {answered:?}"
    );
    // never a partial write: a charge is recorded granted at most once, and the balance is
    // exactly the granted charges' credits
    let mut granted = 0;
    for (reference, status) in &answered {
        let (events, grants) = recorded(&f, reference).await;
        assert_eq!(events, grants, "{reference}: only grants were delivered");
        assert!(grants <= 1, "{reference}: {grants} grants");
        if *status == 200 {
            assert_eq!(grants, 1, "{reference}");
        }
        granted += grants;
    }
    assert_eq!(balance(&f).await, 500 * granted);
    assert!(ledger_holds(&f).await);
    // the database is back: Paystack redelivers what answered 503, the same state records
    // each (granted now, or a duplicate of a grant whose answer was lost)
    for (reference, _) in &unavailable {
        let (status, body) = deliver(&state, f.farm, reference).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            recorded(&f, reference).await.1,
            1,
            "{reference}: granted once"
        );
    }
    assert_eq!(balance(&f).await, 500 * answered.len() as i64);
    assert!(ledger_holds(&f).await);
}

#[tokio::test]
async fn an_unreachable_database_answers_503_with_retry_after() {
    let f = fixture().await;
    let url = unreachable_url("farmops_billing", BILLING_PASSWORD, &f.db.name).unwrap();
    let state = State {
        db: pool(&url, None).unwrap(),
        secret: Secret::new(SECRET),
    };
    let (status, body) = deliver(&state, f.farm, "ps-unreachable").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(events(&f).await, 0, "nothing recorded");
    assert_eq!(balance(&f).await, 0);
}
