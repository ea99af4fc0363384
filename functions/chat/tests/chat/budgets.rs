//! A member's budget over HTTP (issue 18): a turn the budget cannot open is a 402
//! `member_budget_exceeded` with the window's figures (the error shape of the document) and
//! writes nothing; a turn whose next call the budget cannot take ends with what it did, as
//! when the farm runs out of credits. And a turn that crosses a low-balance threshold
//! publishes the alert right after it.

use anyhow::Result;
use farmops::db::Type;
use serde_json::json;

use crate::support::*;

async fn set_daily_cap(
    db: &farmops::testing::TestDb,
    farm: uuid::Uuid,
    owner: &str,
    member: &str,
    cap: i64,
) -> Result<()> {
    let tx = db.app.tenant(farm).await?;
    tx.query(
        "SELECT set_member_budget($1, $2, true, $3, false, NULL)",
        &[
            (&owner, Type::TEXT),
            (&member, Type::TEXT),
            (&cap, Type::INT8),
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

const MESSAGE: &str = "3 birds died in pen 2 and we sold 20 crates of eggs for 45,000 naira";

#[tokio::test]
async fn a_turn_past_the_members_budget_is_a_402_and_a_turn_at_it_ends_early() -> Result<()> {
    let db = farmops::testing::TestDb::new().await?;
    let state = offline_state(&db);
    let (farm, owner) = farm(&db, "budget", 10_000).await?;
    db.member(farm, "worker", "worker").await?;

    // the same turn by the owner (no budget): two model calls
    let (status, probe) = chat(&state, farm, &owner, json!({"message": MESSAGE})).await;
    assert_eq!(status, 200, "{probe}");
    assert_eq!(probe["usage"]["model_calls"], 2, "{probe}");

    // a cap of 0: refused before any model call, nothing written, the window's figures given
    set_daily_cap(&db, farm, &owner, "worker", 0).await?;
    let before = written(&db, farm).await?;
    let (status, body) = chat(&state, farm, "worker", json!({"message": MESSAGE})).await;
    assert_eq!(status, 402, "{body}");
    let e = &body["error"];
    assert_eq!(e["code"], "member_budget_exceeded");
    assert_eq!(
        (&e["window"], &e["cap"], &e["spent"], &e["held"]),
        (&json!("daily"), &json!(0), &json!(0), &json!(0))
    );
    assert!(
        e["needed"].as_i64() > Some(0) && e["resets_at"].is_string(),
        "{body}"
    );
    assert_eq!(written(&db, farm).await?, before);
    let runs = scalar(
        &db,
        farm,
        "SELECT count(*) FROM ai_runs WHERE user_id = 'worker'",
    )
    .await?;
    assert_eq!(runs, 0);

    // a cap of 2 credits: the first call runs (its output cap shrunk to what 2 credits pay
    // for), the second call's minimum does not fit what is left, and the turn ends with what
    // it did (200, the drafts of the first call, a note in the reply)
    set_daily_cap(&db, farm, &owner, "worker", 2).await?;
    let (status, turn) = chat(&state, farm, "worker", json!({"message": MESSAGE})).await;
    assert_eq!(status, 200, "{turn}");
    assert!(
        turn["reply"]
            .as_str()
            .unwrap_or_default()
            .contains("credit budget"),
        "{turn}"
    );
    assert_eq!(turn["usage"]["model_calls"], 1, "{turn}");
    assert_eq!(turn["drafts"].as_array().map(Vec::len), Some(2), "{turn}");
    assert!(turn["credits"]["reserved"].as_i64() <= Some(2), "{turn}");
    assert!(ledger_holds(&db, farm).await?);
    Ok(())
}

/// A turn whose hold takes the balance below a threshold writes the alert in the hold's own
/// transaction, and the chat function publishes it right after the turn (the real
/// EventBridge client, to the local stub).
#[tokio::test]
async fn a_turn_that_crosses_a_threshold_publishes_the_alert_after_it() -> Result<()> {
    let db = farmops::testing::TestDb::new().await?;
    let stub = farmops::testing::eventbridge::EventBridgeStub::start(vec![]).await?;
    let mut state = offline_state(&db);
    state.alerts = Some(stub.bus("farmops-alerts").await);
    let (farm, owner) = farm(&db, "alerting", 30).await?;
    let tx = db.app.tenant(farm).await?;
    tx.query(
        "SELECT set_credit_alerts($1, '[28]'::jsonb)",
        &[(&owner, Type::TEXT)],
    )
    .await?;
    tx.commit().await?;
    let (status, turn) = chat(&state, farm, &owner, json!({"message": MESSAGE})).await;
    assert_eq!(status, 200, "{turn}");
    let requests = stub.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let entry = &requests[0]["Entries"][0];
    assert_eq!(
        (&entry["Source"], &entry["DetailType"]),
        (&json!("farmops.credits"), &json!("low_balance"))
    );
    let unsent = scalar(
        &db,
        farm,
        "SELECT count(*) FROM credit_alert_outbox WHERE sent_at IS NULL",
    )
    .await?;
    let sent = scalar(
        &db,
        farm,
        "SELECT count(*) FROM credit_alert_outbox WHERE sent_at IS NOT NULL",
    )
    .await?;
    assert_eq!((unsent, sent), (0, 1));
    Ok(())
}
