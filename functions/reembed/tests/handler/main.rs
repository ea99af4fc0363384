//! The reembed handler with real API Gateway HTTP API events and the EventBridge schedule,
//! against a real PostgreSQL, with the offline embedder.

use std::sync::Arc;

use farmops::{
    embed::{OfflineEmbedder, TITAN_MODEL_ID},
    rag::{PgRetriever, Retriever},
    testing::{TestDb, eventbridge_scheduled_event},
};
use farmops_http::{
    IdentitySource,
    testing::{apigw_request, body_json},
};
use reembed::{State, handle, handle_event};
use serde_json::json;
use uuid::Uuid;

mod faults;
mod openapi;

type R<T = ()> = anyhow::Result<T>;

/// A raw API Gateway HTTP API event as JSON (what the Lambda's raw-event loop receives).
fn apigw_event(
    method: &str,
    path: &str,
    sub: Option<&str>,
    body: Option<&str>,
) -> serde_json::Value {
    let mut event = json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {"content-type": "application/json"}, "requestContext": {
            "accountId": "1", "apiId": "a", "domainName": "x", "domainPrefix": "x",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "1.1.1.1", "userAgent": "t"},
            "requestId": "r", "routeKey": "$default", "stage": "$default", "time": "t", "timeEpoch": 0,
        },
        "body": body,
        "isBase64Encoded": false
    });
    if let Some(sub) = sub {
        event["requestContext"]["authorizer"] =
            json!({"jwt": {"claims": {"sub": sub}, "scopes": null}});
    }
    event
}

async fn fixture() -> R<(TestDb, State, Uuid)> {
    let db = TestDb::new().await?;
    let farm = db.farm("Green Acres", 10_000).await?;
    for role in ["owner", "manager", "worker", "viewer"] {
        db.member(farm, role, role).await?;
    }
    let state = State {
        db: db.app.clone(),
        identity: IdentitySource::default(),
        embedder: Arc::new(OfflineEmbedder::default()),
    };
    Ok((db, state, farm))
}

#[tokio::test]
async fn add_search_delete_end_to_end() -> R {
    let (db, state, farm) = fixture().await?;
    let path = format!("/farms/{farm}/documents");
    let body =
        json!({"title": "Irrigation", "body": "Water the tomatoes at dawn in July."}).to_string();
    // viewer refused, bad bodies refused, nothing written
    let r = handle(
        &state,
        apigw_request("POST", &path, Some("viewer"), &[], Some(&body)),
    )
    .await;
    assert_eq!(r.status(), 403);
    let r = handle(
        &state,
        apigw_request("POST", &path, Some("worker"), &[], Some("{")),
    )
    .await;
    assert_eq!(r.status(), 400);
    let r = handle(
        &state,
        apigw_request(
            "POST",
            &path,
            Some("worker"),
            &[],
            Some(r#"{"title":"","body":"x"}"#),
        ),
    )
    .await;
    assert_eq!(r.status(), 422);
    assert_eq!(
        body_json(&r)["error"]["code"],
        "invalid_payload",
        "{:?}",
        body_json(&r)
    );
    let r = handle(&state, apigw_request("POST", &path, None, &[], Some(&body))).await;
    assert_eq!(r.status(), 401);
    let r = handle(
        &state,
        apigw_request("POST", &path, Some("worker"), &[], Some(&body)),
    )
    .await;
    assert_eq!(r.status(), 201, "{:?}", body_json(&r));
    let added = body_json(&r);
    assert_eq!(added["chunks"], 1);
    let id = added["id"].as_str().unwrap().to_string();

    let retriever = PgRetriever {
        embedder: state.embedder.clone(),
    };
    let tx = db.app.tenant(farm).await?;
    let found = retriever.retrieve(&tx, "when to water tomatoes", 3).await?;
    tx.rollback().await?;
    assert_eq!(found[0].content, "Water the tomatoes at dawn in July.");

    let del = format!("/farms/{farm}/documents/{id}");
    let r = handle(
        &state,
        apigw_request("DELETE", &del, Some("worker"), &[], None),
    )
    .await;
    assert_eq!(r.status(), 403);
    let r = handle(
        &state,
        apigw_request("DELETE", "/farms/x/documents/y", Some("manager"), &[], None),
    )
    .await;
    assert_eq!(r.status(), 404, "a malformed id is an unknown one");
    let r = handle(
        &state,
        apigw_request("DELETE", &del, Some("manager"), &[], None),
    )
    .await;
    assert_eq!(r.status(), 200, "{:?}", body_json(&r));
    let r = handle(
        &state,
        apigw_request("DELETE", &del, Some("manager"), &[], None),
    )
    .await;
    assert_eq!(r.status(), 404);
    let tx = db.app.tenant(farm).await?;
    assert!(
        retriever
            .retrieve(&tx, "when to water tomatoes", 3)
            .await?
            .is_empty()
    );
    // Another farm's member cannot post here.
    let other = db.farm("other", 100).await?;
    db.member(other, "stranger", "owner").await?;
    let r = handle(
        &state,
        apigw_request("POST", &path, Some("stranger"), &[], Some(&body)),
    )
    .await;
    assert_eq!(r.status(), 404);
    Ok(())
}

#[tokio::test]
async fn reembed_on_demand_and_on_schedule() -> R {
    let (db, state, farm) = fixture().await?;
    let path = format!("/farms/{farm}/documents");
    for i in 0..3 {
        let body =
            json!({"title": "t", "body": format!("note number {i} about sheep")}).to_string();
        let r = handle(
            &state,
            apigw_request("POST", &path, Some("worker"), &[], Some(&body)),
        )
        .await;
        assert_eq!(r.status(), 201);
    }
    // The configuration changes model.
    let state = State {
        embedder: Arc::new(OfflineEmbedder::with_model_id(TITAN_MODEL_ID)),
        ..state
    };
    let re = format!("/farms/{farm}/reembed");
    let r = handle(
        &state,
        apigw_request("POST", &re, Some("worker"), &[], None),
    )
    .await;
    assert_eq!(r.status(), 403);
    // The schedule arrives as an EventBridge envelope and sweeps every farm.
    let report = handle_event(&state, eventbridge_scheduled_event()).await?;
    let farms = report["farms"].as_array().unwrap();
    let ours = farms
        .iter()
        .find(|f| f["farm_id"] == farm.to_string())
        .unwrap();
    assert_eq!(ours["reembedded"], 3);
    // On demand afterwards: nothing left.
    let r = handle(
        &state,
        apigw_request("POST", &re, Some("manager"), &[], None),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(body_json(&r)["reembedded"], 0);
    let owner = db.owner_client().await?;
    let stale: i64 = owner
        .query_one(
            "SELECT count(*) FROM embeddings WHERE embedding_model <> $1",
            &[&TITAN_MODEL_ID],
        )
        .await?
        .get(0);
    assert_eq!(stale, 0);
    // An API Gateway event through the same raw entry point answers in the v2 response shape.
    let event = json!({
        "version": "2.0", "routeKey": "$default", "rawPath": re, "rawQueryString": "",
        "headers": {}, "requestContext": {
            "accountId": "1", "apiId": "a", "domainName": "x", "domainPrefix": "x",
            "http": {"method": "POST", "path": re, "protocol": "HTTP/1.1", "sourceIp": "1.1.1.1", "userAgent": "t"},
            "requestId": "r", "routeKey": "$default", "stage": "$default", "time": "t", "timeEpoch": 0,
            "authorizer": {"jwt": {"claims": {"sub": "owner"}, "scopes": null}}
        },
        "isBase64Encoded": false
    });
    let out = handle_event(&state, event).await?;
    assert_eq!(out["statusCode"], 200, "{out}");
    let body: serde_json::Value = serde_json::from_str(out["body"].as_str().unwrap())?;
    assert_eq!(body["reembedded"], 0);
    Ok(())
}

/// `cargo lambda watch` (scripts/dev-up.sh) sends a Function URL request as the
/// `ApiGatewayV2httpRequest` of `aws_lambda_events` (no authorizer; the caller in the dev
/// header) and reads the answer as an `ApiGatewayV2httpResponse`, as API Gateway does: the
/// raw-event entry point must answer in that exact shape (`cookies` included) or the local
/// URL answers 500.
#[tokio::test]
async fn answers_cargo_lambda_watch_function_url_events() -> R {
    use lambda_http::aws_lambda_events::apigw::{
        ApiGatewayV2httpRequest, ApiGatewayV2httpResponse,
    };
    let (_db, mut state, farm) = fixture().await?;
    state.identity =
        IdentitySource::from_lookup(|k| (k == "FARMOPS_DEV_IDENTITY").then(|| "1".to_string()));
    let event = |method: &str, path: String, user: Option<&str>, body: Option<&str>| {
        let mut event = ApiGatewayV2httpRequest::default();
        event.version = Some("2.0".into());
        event.route_key = Some("$default".into());
        event.raw_path = Some(path.clone());
        event.request_context.stage = Some("$default".into());
        event.request_context.route_key = Some("$default".into());
        event.request_context.request_id = Some(Uuid::new_v4().to_string());
        event.request_context.domain_name = Some("localhost".into());
        event.request_context.domain_prefix = Some("reembed".into());
        event.request_context.http.method = method.parse().unwrap();
        event.request_context.http.path = Some(path);
        event.request_context.http.protocol = Some("http".into());
        event.request_context.http.source_ip = Some("127.0.0.1".into());
        event.request_context.http.user_agent = Some("cargo-lambda".into());
        event.request_context.time_epoch = 1_700_000_000;
        event
            .headers
            .insert("content-type", "application/json".parse().unwrap());
        if let Some(user) = user {
            event
                .headers
                .insert(farmops_http::DEV_USER_HEADER, user.parse().unwrap());
        }
        event.body = body.map(str::to_string);
        serde_json::to_value(&event).unwrap()
    };
    let answer = |out: serde_json::Value| -> R<(u16, serde_json::Value)> {
        let res: ApiGatewayV2httpResponse = serde_json::from_value(out.clone())
            .map_err(|e| anyhow::anyhow!("not an ApiGatewayV2httpResponse ({e}): {out}"))?;
        let body = match res.body {
            Some(lambda_http::Body::Text(t)) => serde_json::from_str(&t)?,
            other => anyhow::bail!("not a JSON text body: {other:?}"),
        };
        Ok((u16::try_from(res.status_code)?, body))
    };
    let doc = json!({"title": "Vaccination", "body": "Newcastle disease vaccine on day 7."});
    let path = format!("/farms/{farm}/documents");
    let out = handle_event(
        &state,
        event("POST", path.clone(), Some("worker"), Some(&doc.to_string())),
    )
    .await?;
    let (status, added) = answer(out)?;
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["chunks"], 1);
    let out = handle_event(&state, event("POST", path, None, Some(&doc.to_string()))).await?;
    assert_eq!(answer(out)?.0, 401);
    let out = handle_event(
        &state,
        event(
            "DELETE",
            format!("/farms/{farm}/documents/{}", added["id"].as_str().unwrap()),
            Some("manager"),
            None,
        ),
    )
    .await?;
    assert_eq!(answer(out)?.0, 200);
    Ok(())
}
