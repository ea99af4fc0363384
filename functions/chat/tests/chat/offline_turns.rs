//! End to end with the offline model: autonomy tiers, conversations, feedback.

use anyhow::Result;
use farmops::testing::TestDb;
use farmops_http::testing::{apigw_request, body_json};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::*;

const MESSAGE: &str = "used 4 bags of feed and sold 20 crates of eggs for 45,000 naira";

async fn set_autonomy(db: &TestDb, farm: Uuid, tier: &str, auto: Value) -> Result<()> {
    let owner = db.owner_client().await?;
    owner
        .query_typed(
            "UPDATE farms SET ai_autonomy = $2, ai_auto_categories = $3 WHERE id = $1",
            &[
                (&farm, farmops::db::Type::UUID),
                (&tier, farmops::db::Type::TEXT),
                (&auto, farmops::db::Type::JSONB),
            ],
        )
        .await?;
    Ok(())
}

#[tokio::test]
async fn suggest_writes_nothing() -> Result<()> {
    let db = TestDb::new().await?;
    let (farm, owner) = farm(&db, "suggest", 10_000).await?;
    set_autonomy(&db, farm, "suggest", json!([])).await?;
    let state = offline_state(&db);
    let (status, body) = chat(&state, farm, &owner, json!({"message": MESSAGE})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["drafts"], json!([]));
    assert_eq!(body["records"], json!([]));
    assert_eq!(body["recommendations"], json!([]));
    let refused: Vec<&str> = body["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["tool"].as_str().unwrap())
        .collect();
    assert_eq!(refused, ["record_feed_use", "record_sale"], "{body}");
    assert!(
        body["reply"].as_str().unwrap().contains("Not saved"),
        "{body}"
    );
    assert!(
        body["reply"]
            .as_str()
            .unwrap()
            .starts_with("(offline model)")
    );
    assert_eq!(
        written(&db, farm).await?,
        3,
        "only the conversation and its two messages"
    );
    assert_eq!(scalar(&db, farm, "SELECT count(*) FROM messages").await?, 2);
    Ok(())
}

#[tokio::test]
async fn draft_writes_only_drafts() -> Result<()> {
    let db = TestDb::new().await?;
    let (farm, owner) = farm(&db, "draft", 10_000).await?;
    let state = offline_state(&db);
    let before = state.db.round_trips();
    let (status, body) = chat(&state, farm, &owner, json!({"message": MESSAGE})).await;
    assert_eq!(
        state.db.round_trips() - before,
        5,
        "context, open+first hold+commit, the second call's top-up, pipelined writes+settle, commit"
    );
    assert_eq!(status, 200, "{body}");
    let types: Vec<&str> = body["drafts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["record_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["feed_use", "sale"]);
    assert_eq!(body["drafts"][1]["payload"]["amount_kobo"], 4_500_000);
    assert_eq!(body["records"], json!([]));
    assert_eq!(
        scalar(&db, farm, "SELECT count(*) FROM feed_logs").await?,
        0
    );
    assert_eq!(scalar(&db, farm, "SELECT count(*) FROM sales").await?, 0);
    assert_eq!(
        scalar(&db, farm, "SELECT count(*) FROM assistant_drafts").await?,
        2
    );
    let reply = body["reply"].as_str().unwrap();
    assert!(
        reply.starts_with("(offline model)") && reply.contains("awaiting confirmation"),
        "{reply}"
    );
    Ok(())
}

#[tokio::test]
async fn auto_writes_feed_directly_while_the_sale_stays_a_draft() -> Result<()> {
    let db = TestDb::new().await?;
    let (farm, owner) = farm(&db, "auto", 10_000).await?;
    set_autonomy(&db, farm, "auto", json!(["feed_use", "sale"])).await?;
    let state = offline_state(&db);
    let (status, body) = chat(&state, farm, &owner, json!({"message": MESSAGE})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["records"].as_array().unwrap().len(), 1);
    assert_eq!(body["records"][0]["record_type"], "feed_use");
    assert_eq!(body["records"][0]["record"]["source"], "ai_auto");
    assert_eq!(body["records"][0]["record"]["ai_run_id"], body["run_id"]);
    assert_eq!(body["drafts"].as_array().unwrap().len(), 1);
    assert_eq!(body["drafts"][0]["record_type"], "sale");
    assert_eq!(
        scalar(
            &db,
            farm,
            "SELECT count(*) FROM feed_logs WHERE source = 'ai_auto'"
        )
        .await?,
        1
    );
    assert_eq!(scalar(&db, farm, "SELECT count(*) FROM sales").await?, 0);
    Ok(())
}

#[tokio::test]
async fn the_issue_sentences_end_to_end_with_metering() -> Result<()> {
    let db = TestDb::new().await?;
    let (farm, owner) = farm(&db, "sentences", 10_000).await?;
    let state = offline_state(&db);
    let (status, body) = chat(
        &state,
        farm,
        &owner,
        json!({"message": "3 birds died in pen 2. paid 12,500 for vaccines, pond 3 weights average 350 g, coughing in house B and remind me to vaccinate on Monday"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mut types: Vec<&str> = body["drafts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["record_type"].as_str().unwrap())
        .collect();
    types.sort();
    assert_eq!(types, ["expense", "mortality", "symptom", "task", "weight"]);
    assert_eq!(
        body["recommendations"].as_array().unwrap().len(),
        1,
        "symptoms bring a recommendation"
    );
    assert_eq!(body["recommendations"][0]["status"], "pending");
    let charged = body["credits"]["charged"].as_i64().unwrap();
    assert!(charged >= 1 && charged < body["credits"]["reserved"].as_i64().unwrap());
    assert_eq!(balance(&db, farm).await?, 10_000 - charged);
    assert_eq!(body["usage"]["model_calls"], 2);
    assert!(
        body["evals"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["passed"] == true),
        "{body}"
    );
    assert_eq!(
        scalar(&db, farm, "SELECT count(*) FROM ai_evals").await?,
        7,
        "6 tool calls + clinical"
    );
    Ok(())
}

#[tokio::test]
async fn conversations_continue_and_foreign_ones_are_404() -> Result<()> {
    let db = TestDb::new().await?;
    let (farm, owner) = farm(&db, "conv", 10_000).await?;
    db.member(farm, "worker-1", "worker").await?;
    let state = offline_state(&db);
    let (_, first) = chat(
        &state,
        farm,
        &owner,
        json!({"message": "What should I feed layers?"}),
    )
    .await;
    let reply = first["reply"].as_str().unwrap();
    assert!(reply.starts_with("(offline model)"), "{reply}");
    assert_eq!(first["drafts"], json!([]), "a question writes nothing");
    let conversation = first["conversation_id"].as_str().unwrap().to_string();
    let (status, second) = chat(
        &state,
        farm,
        &owner,
        json!({"message": "used 2 bags of feed", "conversation_id": conversation}),
    )
    .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["conversation_id"], conversation.as_str());
    assert_eq!(
        scalar(
            &db,
            farm,
            &format!("SELECT count(*) FROM messages WHERE conversation_id = '{conversation}'")
        )
        .await?,
        4
    );
    let (status, body) = chat(
        &state,
        farm,
        "worker-1",
        json!({"message": "hi", "conversation_id": conversation}),
    )
    .await;
    assert_eq!(status, 404, "another member's conversation: {body}");
    let (status, _) = chat(
        &state,
        farm,
        &owner,
        json!({"message": "hi", "conversation_id": Uuid::new_v4()}),
    )
    .await;
    assert_eq!(status, 404, "unknown conversation");
    Ok(())
}

async fn feedback(
    state: &chat::State,
    farm: Uuid,
    run: &str,
    user: &str,
    body: &str,
) -> (u16, Value) {
    let req = apigw_request(
        "POST",
        &format!("/farms/{farm}/runs/{run}/feedback"),
        Some(user),
        &[],
        Some(body),
    );
    let res = chat::handle(state, req).await;
    farmops_http::testing::openapi::assert_conforms_path(
        "POST",
        &format!("/farms/{farm}/runs/{run}/feedback"),
        &res,
    );
    (res.status().as_u16(), body_json(&res))
}

#[tokio::test]
async fn any_member_may_rate_a_run_of_their_farm() -> Result<()> {
    let db = TestDb::new().await?;
    let (farm, owner) = farm(&db, "feedback", 10_000).await?;
    let (other, other_owner) = crate::support::farm(&db, "feedback-other", 10_000).await?;
    db.member(farm, "viewer-1", "viewer").await?;
    let state = offline_state(&db);
    let (_, turn) = chat(
        &state,
        farm,
        &owner,
        json!({"message": "used 1 bag of feed"}),
    )
    .await;
    let run = turn["run_id"].as_str().unwrap();
    let (status, body) = feedback(
        &state,
        farm,
        run,
        "viewer-1",
        r#"{"rating": "up", "comment": "useful"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rating"], "up");
    let (status, _) = feedback(&state, farm, run, "viewer-1", r#"{"rating": "down"}"#).await;
    assert_eq!(status, 200, "a second rating replaces the first");
    assert_eq!(
        scalar(
            &db,
            farm,
            "SELECT count(*) FROM ai_feedback WHERE rating = 'down'"
        )
        .await?,
        1
    );
    assert_eq!(
        feedback(&state, farm, run, "viewer-1", r#"{"rating": "meh"}"#)
            .await
            .0,
        422
    );
    assert_eq!(
        feedback(&state, farm, run, "stranger", r#"{"rating": "up"}"#)
            .await
            .0,
        404
    );
    assert_eq!(
        feedback(&state, other, run, &other_owner, r#"{"rating": "up"}"#)
            .await
            .0,
        404,
        "another farm's run"
    );
    assert_eq!(
        feedback(&state, farm, "not-a-uuid", &owner, r#"{"rating": "up"}"#)
            .await
            .0,
        404
    );
    Ok(())
}
