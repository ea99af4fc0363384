//! The chat function's real responses (success and every reachable refusal) conform to
//! docs/openapi.yaml. (502/503 need the Converse stub: `bedrock_stub` covers their bodies.)

use farmops::{
    autonomy::{self, AutonomySettings, Tier},
    records::RecordType,
    testing::TestDb,
};
use farmops_http::testing::{
    apigw_request, body_json,
    openapi::{
        assert_conforms, assert_method_not_allowed, assert_routes_are_documented,
        unsupported_methods,
    },
};
use lambda_http::{Body, Response};

use crate::support::{farm, offline_state};

const CHAT: &str = "/farms/{farm_id}/chat";
const FEEDBACK: &str = "/farms/{farm_id}/runs/{run_id}/feedback";

async fn post(state: &chat::State, path: &str, user: Option<&str>, body: &str) -> Response<Body> {
    let req = apigw_request(
        "POST",
        path,
        user,
        &[("content-type", "application/json")],
        Some(body),
    );
    chat::handle(state, req).await
}

#[tokio::test]
async fn chat_responses_conform_to_the_openapi_document() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let state = offline_state(&db);
    let (farm_id, owner) = farm(&db, "OpenAPI", 1000).await?;
    db.member(farm_id, "viewer", "viewer").await?;
    let tx = db.owner.tenant(farm_id).await?;
    autonomy::save_autonomy(
        &tx,
        &AutonomySettings {
            tier: Tier::Auto,
            auto_categories: [RecordType::FeedUse].into(),
            ..Default::default()
        },
    )
    .await?;
    tx.commit().await?;
    let chat = format!("/farms/{farm_id}/chat");

    // 200: two drafts and a direct (ai_auto) record.
    let res = post(
        &state,
        &chat,
        Some(&owner),
        r#"{"message": "3 birds died in pen 2, used 4 bags of feed and sold 20 crates of eggs for 45,000 naira"}"#,
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_conforms("POST", CHAT, &res);
    let turn = body_json(&res);
    assert_eq!(turn["drafts"].as_array().map(Vec::len), Some(2), "{turn}");
    assert_eq!(turn["records"].as_array().map(Vec::len), Some(1), "{turn}");
    let run = turn["run_id"].as_str().unwrap().to_string();

    let refusals: [(Option<&str>, String, String, u16); 7] = [
        (None, chat.clone(), r#"{"message": "hi"}"#.into(), 401),
        (Some(&owner), chat.clone(), "{not json".into(), 400),
        (Some(&owner), chat.clone(), r#"{"message": ""}"#.into(), 422),
        (
            Some("viewer"),
            chat.clone(),
            r#"{"message": "hi"}"#.into(),
            403,
        ),
        (
            Some(&owner),
            format!("/farms/{}/chat", uuid::Uuid::new_v4()),
            r#"{"message": "hi"}"#.into(),
            404,
        ),
        (
            Some(&owner),
            chat.clone(),
            format!(r#"{{"message": "{}"}}"#, "a".repeat(20_000)),
            413,
        ),
        (
            Some(&owner),
            chat.clone(),
            r#"{"message": "hi", "farm_id": "x"}"#.into(),
            422,
        ),
    ];
    for (user, path, body, status) in refusals {
        let res = post(&state, &path, user, &body).await;
        assert_eq!(
            res.status(),
            status,
            "{path} {body:.40}: {:?}",
            body_json(&res)
        );
        assert_conforms("POST", CHAT, &res);
    }

    // 402: a farm that cannot pay.
    let (poor, poor_owner) = farm(&db, "Poor", 0).await?;
    let res = post(
        &state,
        &format!("/farms/{poor}/chat"),
        Some(&poor_owner),
        r#"{"message": "hi"}"#,
    )
    .await;
    assert_eq!(res.status(), 402);
    assert_conforms("POST", CHAT, &res);

    // feedback: 200, 422, 404
    let feedback = format!("/farms/{farm_id}/runs/{run}/feedback");
    let res = post(
        &state,
        &feedback,
        Some("viewer"),
        r#"{"rating": "up", "comment": "spot on"}"#,
    )
    .await;
    assert_eq!(res.status(), 200, "{:?}", body_json(&res));
    assert_conforms("POST", FEEDBACK, &res);
    let res = post(&state, &feedback, Some("viewer"), r#"{"rating": "meh"}"#).await;
    assert_eq!(res.status(), 422);
    assert_conforms("POST", FEEDBACK, &res);
    let unknown = format!("/farms/{farm_id}/runs/{}/feedback", uuid::Uuid::new_v4());
    let res = post(&state, &unknown, Some("viewer"), r#"{"rating": "up"}"#).await;
    assert_eq!(res.status(), 404);
    assert_conforms("POST", FEEDBACK, &res);
    Ok(())
}

/// Every route of the document's for chat is served, and every other method on those paths
/// is a 405 with `Allow` (not a 404).
#[tokio::test]
async fn other_methods_answer_405_with_allow() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let state = offline_state(&db);
    assert_routes_are_documented("chat", chat::ROUTES);
    let cases = unsupported_methods("chat");
    assert_eq!(cases.len(), 2 * 7);
    for case in &cases {
        let req = apigw_request(case.method, &case.path, Some("someone"), &[], None);
        assert_method_not_allowed(case, &chat::handle(&state, req).await);
    }
    // an unknown path stays a 404
    let req = apigw_request("GET", "/farms/x/chats", Some("someone"), &[], None);
    assert_eq!(chat::handle(&state, req).await.status(), 404);
    Ok(())
}
