//! Bad input gets the right status and code, never a 500, and reserves nothing.

use anyhow::Result;
use farmops::testing::TestDb;
use farmops_http::testing::{apigw_request, body_json};
use uuid::Uuid;

use crate::support::*;

#[tokio::test]
async fn bad_requests_are_refused_with_their_status_and_cost_nothing() -> Result<()> {
    let db = TestDb::new().await?;
    let (farm, owner) = farm(&db, "bad", 10_000).await?;
    db.member(farm, "viewer-1", "viewer").await?;
    let state = offline_state(&db);
    let path = format!("/farms/{farm}/chat");
    let big = format!(
        r#"{{"message": "{}"}}"#,
        "a".repeat(farmops::chat::BODY_LIMIT)
    );
    let long = format!(
        r#"{{"message": "{}"}}"#,
        "a".repeat(farmops::chat::MAX_MESSAGE_CHARS + 1)
    );
    let unknown_farm = format!("/farms/{}/chat", Uuid::new_v4());
    type Case<'a> = (&'a str, Option<&'a str>, Option<&'a str>, u16, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (&path, Some(&owner), Some("{not json"), 400, "bad_request"),
        (&path, Some(&owner), None, 400, "bad_request"),
        (&path, Some(&owner), Some("{}"), 422, "invalid_payload"),
        (
            &path,
            Some(&owner),
            Some(r#"{"message": "hi", "farm_id": "x"}"#),
            422,
            "invalid_payload",
        ),
        (
            &path,
            Some(&owner),
            Some(r#"{"message": "   "}"#),
            422,
            "invalid_payload",
        ),
        (
            &path,
            Some(&owner),
            Some(r#"{"message": "hi", "conversation_id": "nope"}"#),
            422,
            "invalid_payload",
        ),
        (&path, Some(&owner), Some(&long), 422, "invalid_payload"),
        (&path, Some(&owner), Some(&big), 413, "payload_too_large"),
        (
            &path,
            None,
            Some(r#"{"message": "hi"}"#),
            401,
            "unauthenticated",
        ),
        (
            &path,
            Some("stranger"),
            Some(r#"{"message": "hi"}"#),
            404,
            "not_found",
        ),
        (
            &unknown_farm,
            Some(&owner),
            Some(r#"{"message": "hi"}"#),
            404,
            "not_found",
        ),
        (
            "/farms/not-a-uuid/chat",
            Some(&owner),
            Some(r#"{"message": "hi"}"#),
            404,
            "not_found",
        ),
        (
            "/farms/x/unknown",
            Some(&owner),
            Some(r#"{"message": "hi"}"#),
            404,
            "not_found",
        ),
        (
            &path,
            Some("viewer-1"),
            Some(r#"{"message": "hi"}"#),
            403,
            "forbidden",
        ),
    ];
    for (path, user, body, status, code) in cases {
        let req = apigw_request("POST", path, user, &[], body);
        let res = chat::handle(&state, req).await;
        farmops_http::testing::openapi::assert_conforms_path("POST", path, &res);
        let json = body_json(&res);
        assert_eq!(
            res.status().as_u16(),
            status,
            "{path} {user:?} {body:?}: {json}"
        );
        assert_eq!(json["error"]["code"], code, "{path} {body:?}");
    }
    assert_eq!(balance(&db, farm).await?, 10_000);
    assert_eq!(scalar(&db, farm, "SELECT count(*) FROM ai_runs").await?, 0);
    Ok(())
}

#[tokio::test]
async fn a_farm_that_cannot_pay_the_minimum_call_gets_402_before_any_model_call() -> Result<()> {
    let db = TestDb::new().await?;
    let (farm, owner) = farm(&db, "poor", 1).await?;
    let state = offline_state(&db);
    let (status, body) = chat(
        &state,
        farm,
        &owner,
        serde_json::json!({"message": "used 4 bags of feed"}),
    )
    .await;
    assert_eq!(status, 402, "{body}");
    assert_eq!(body["error"]["balance"], 1);
    // the minimum call: the request as built and the smallest maxTokens
    let needed = body["error"]["needed"].as_i64().unwrap();
    assert!((2..=3).contains(&needed), "{body}");
    assert_eq!(written(&db, farm).await?, 0);
    Ok(())
}
