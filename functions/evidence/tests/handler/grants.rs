//! `GET /farms/{farm_id}/grants` and the lots in the credits statement: what each lot has
//! left, its status through expiry, the `expire_grant` entry, roles, and the document.

use farmops::credits::{LotCategory, LotSource, NewLot};
use farmops_http::testing::openapi::assert_conforms;

use super::*;

const GRANTS: &str = "/farms/{farm_id}/grants";

#[tokio::test]
async fn grants_show_each_lot_through_spending_and_expiry_for_owners_and_managers() -> Result<()> {
    let db = TestDb::new().await?;
    let farm = db.farm("lots", 0).await?;
    for (user, role) in [
        ("olu", "owner"),
        ("mia", "manager"),
        ("wes", "worker"),
        ("vic", "viewer"),
    ] {
        db.member(farm, user, role).await?;
    }
    let promo =
        |key: &str, amount: i64, expires_in_ms: Option<i64>, effective_in_h: Option<i64>| NewLot {
            amount,
            category: LotCategory::Promotional,
            priority: 10,
            effective_at: effective_in_h.map(|h| Utc::now() + chrono::Duration::hours(h)),
            expires_at: expires_in_ms.map(|ms| Utc::now() + chrono::Duration::milliseconds(ms)),
            source: LotSource::Promotion,
            idempotency_key: key.into(),
            actor: "ops".into(),
            reason: format!("promotion {key}"),
        };
    let tx = db.owner.tenant(farm).await?;
    // long enough for the spend and the first read on a slow machine
    let soon_expires = tokio::time::Instant::now() + std::time::Duration::from_millis(4000);
    let soon = credits::grant_lot(&tx, &promo("welcome", 5, Some(4000), None)).await?;
    let later = credits::grant_lot(&tx, &promo("next-month", 40, None, Some(24))).await?;
    let paid = credits::grant_lot(&tx, &NewLot::operator(100, "ops", "starter pack")).await?;
    tx.commit().await?;
    // a run spends the promotion first, then 3 of the pack, and is charged all of it
    let run = reserve(&db.app, farm, 8, "a turn").await?;
    let tx = db.app.tenant(farm).await?;
    let settled = Settlement {
        failed: false,
        credits_charged: 8,
        input_tokens: 10,
        output_tokens: 10,
        latency_ms: 5,
        response_summary: None,
        error: None,
    };
    credits::settle_run(&tx, run, &settled).await?;
    tx.commit().await?;

    let state = state(&db);
    let path = format!("/farms/{farm}/grants");
    let res = handle(&state, apigw_request("GET", &path, Some("mia"), &[], None)).await;
    assert_eq!(res.status().as_u16(), 200, "{}", text(&res));
    assert_conforms("GET", GRANTS, &res);
    let g = body_json(&res);
    assert_eq!(
        (g["balance"].as_i64(), g["spendable"].as_i64()),
        (Some(137), Some(97))
    );
    let by_id = |id: i64| -> Value {
        g["lots"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(by_id(soon.lot_id)["remaining"], 0);
    assert_eq!(by_id(soon.lot_id)["status"], "live");
    assert_eq!(by_id(later.lot_id)["status"], "pending");
    assert_eq!(by_id(paid.lot_id)["remaining"], 97);
    assert_eq!(by_id(paid.lot_id)["source"], "operator");

    // past its expiry the spent promotion closes with nothing to take; an unspent one would
    // leave an expire_grant entry: grant another small one and let it lapse
    let tx = db.owner.tenant(farm).await?;
    let lapsing = credits::grant_lot(&tx, &promo("lapsing", 7, Some(1000), None)).await?;
    tx.commit().await?;
    let lapsed = tokio::time::Instant::now() + std::time::Duration::from_millis(1100);
    tokio::time::sleep_until(lapsed.max(soon_expires + std::time::Duration::from_millis(100)))
        .await;
    let res = handle(&state, apigw_request("GET", &path, Some("olu"), &[], None)).await;
    let g = body_json(&res);
    let status_of = |g: &Value, id: i64| {
        g["lots"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["id"] == id)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status_of(&g, lapsing.lot_id), "expiring");
    assert_eq!(g["spendable"], 97, "an expiring lot is not spendable");
    let outcome = farmops::reconcile::run_at(&db.app, Utc::now()).await?;
    assert_eq!((outcome.lots_closed, outcome.grant_credits_expired), (2, 7));
    let res = handle(&state, apigw_request("GET", &path, Some("olu"), &[], None)).await;
    assert_conforms("GET", GRANTS, &res);
    let g = body_json(&res);
    assert_eq!(status_of(&g, lapsing.lot_id), "closed");
    assert_eq!(status_of(&g, soon.lot_id), "closed");
    assert_eq!(g["balance"], 137);

    // the credits statement: the lots, and the expire_grant entry naming its lot
    let res = handle(
        &state,
        apigw_request(
            "GET",
            &format!("/farms/{farm}/credits"),
            Some("mia"),
            &[],
            None,
        ),
    )
    .await;
    assert_conforms("GET", "/farms/{farm_id}/credits", &res);
    let c = body_json(&res);
    assert_eq!(c["lots"].as_array().map(Vec::len), Some(4));
    assert_eq!(c["entries"][0]["entry_type"], "expire_grant");
    assert_eq!(c["entries"][0]["lot_id"], lapsing.lot_id);
    assert_eq!(c["entries"][0]["delta"], -7);
    assert_eq!(c["totals"]["grants_expired"], 7);
    assert_eq!(c["totals"]["expected_balance"], c["balance"]);
    assert_eq!(c["invariant"]["holds"], true);

    // roles: a worker and a viewer are refused, a stranger does not see the farm
    for (user, want) in [("wes", 403), ("vic", 403), ("bob", 404)] {
        let res = handle(&state, apigw_request("GET", &path, Some(user), &[], None)).await;
        assert_eq!(res.status().as_u16(), want, "{user}");
        assert_conforms("GET", GRANTS, &res);
    }
    Ok(())
}
