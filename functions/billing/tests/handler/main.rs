//! The billing handler with real API Gateway HTTP API (payload 2.0) events as a route without
//! an authorizer receives them (no `requestContext.authorizer`), against a real PostgreSQL as
//! `farmops_billing`; every answer checked against docs/openapi.yaml.

use base64::Engine;
use billing::{ROUTES, State, handle, handle_at};
use chrono::{TimeZone, Utc};
use farmops::{config::Secret, payments::paystack, testing::TestDb};
use farmops_http::testing::{
    body_json,
    openapi::{
        assert_conforms_path, assert_method_not_allowed, assert_routes_are_documented,
        unsupported_methods,
    },
};
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};
use uuid::Uuid;

mod faults;

const SECRET: &str = "sk_test_farmops_local";
const PATH: &str = "/payments/paystack";

/// What API Gateway sends the function for `method path` on a route with no authorizer:
/// the HTTP API's 2.0 event (shared/fixtures/apigw-v2-request-jwt-authorizer.json) with its
/// `authorizer` removed, Paystack's headers, and the body (base64-encoded when `base64`, as
/// API Gateway does for a body it does not take for text).
fn event(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8], base64: bool) -> Request {
    let mut event: Value = serde_json::from_str(include_str!(
        "../../../../shared/fixtures/apigw-v2-request-jwt-authorizer.json"
    ))
    .unwrap();
    event["routeKey"] = format!("{method} {path}").into();
    event["rawPath"] = path.into();
    event["rawQueryString"] = "".into();
    event["cookies"] = json!([]);
    event["queryStringParameters"] = json!({});
    event["pathParameters"] = json!({});
    event["stageVariables"] = json!({});
    let context = event["requestContext"].as_object_mut().unwrap();
    context.remove("authorizer");
    context.remove("authentication");
    context.insert("routeKey".into(), format!("{method} {path}").into());
    event["requestContext"]["http"]["method"] = method.into();
    event["requestContext"]["http"]["path"] = path.into();
    event["requestContext"]["http"]["sourceIp"] = "52.31.139.75".into();
    event["requestContext"]["http"]["userAgent"] = "Paystack".into();
    let mut h = serde_json::Map::new();
    h.insert("content-type".into(), "application/json".into());
    for (k, v) in headers {
        h.insert(k.to_ascii_lowercase(), (*v).into());
    }
    event["headers"] = h.into();
    event["body"] = if base64 {
        base64::engine::general_purpose::STANDARD
            .encode(body)
            .into()
    } else {
        String::from_utf8(body.to_vec()).unwrap().into()
    };
    event["isBase64Encoded"] = base64.into();
    lambda_http::request::from_str(&event.to_string()).expect("lambda_http parses the event")
}

/// Paystack's `charge.success` shape (shared/fixtures/paystack) for our farm and pack.
fn charge(reference: &str, farm: &str, pack: &str, amount: i64) -> Value {
    let mut event: Value = serde_json::from_str(include_str!(
        "../../../../shared/fixtures/paystack/charge-success.json"
    ))
    .unwrap();
    event["data"]["reference"] = reference.into();
    event["data"]["amount"] = amount.into();
    event["data"]["metadata"] = json!({"farm_id": farm, "pack": pack});
    event
}

struct Fixture {
    db: TestDb,
    state: State,
    farm: Uuid,
}

async fn fixture() -> Fixture {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("buyer", 0).await.unwrap();
    db.pack("starter", 500, 500_000).await.unwrap();
    let state = State {
        db: db.billing_pool(2).unwrap(),
        secret: Secret::new(SECRET),
    };
    Fixture { db, state, farm }
}

/// POSTs `body` with `signature` (None: no header) and checks the answer against the document.
async fn post(f: &Fixture, body: &[u8], signature: Option<&str>, base64: bool) -> (u16, Value) {
    let headers: Vec<(&str, &str)> = signature
        .map(|s| vec![("x-paystack-signature", s)])
        .unwrap_or_default();
    let res: Response<Body> = handle(&f.state, event("POST", PATH, &headers, body, base64)).await;
    assert_conforms_path("POST", PATH, &res);
    (res.status().as_u16(), body_json(&res))
}

fn sign(body: &[u8]) -> String {
    paystack::sign(body, SECRET.as_bytes())
}

async fn balance(f: &Fixture) -> i64 {
    let owner = f.db.owner_client().await.unwrap();
    owner
        .query_one("SELECT credit_balance FROM farms WHERE id = $1", &[&f.farm])
        .await
        .unwrap()
        .get(0)
}

async fn events(f: &Fixture) -> i64 {
    let owner = f.db.owner_client().await.unwrap();
    owner
        .query_one("SELECT count(*) FROM payment_events", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_signed_charge_is_granted_once_and_a_redelivery_answers_200() {
    let f = fixture().await;
    let body = charge("ps-h1", &f.farm.to_string(), "starter", 500_000).to_string();
    let (status, answer) = post(&f, body.as_bytes(), Some(&sign(body.as_bytes())), false).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["verdict"], "granted");
    assert_eq!(answer["credits"], 500);
    assert_eq!(answer["farm_id"], f.farm.to_string());
    let (status, answer) = post(&f, body.as_bytes(), Some(&sign(body.as_bytes())), false).await;
    assert_eq!(
        (status, answer["verdict"].as_str()),
        (200, Some("duplicate"))
    );
    assert_eq!(balance(&f).await, 500);
    assert_eq!(events(&f).await, 2);
}

/// API Gateway base64-encodes a body it does not take for text: the signature is over the
/// decoded bytes, and those are what the handler verifies.
#[tokio::test]
async fn a_base64_encoded_body_is_verified_as_its_bytes() {
    let f = fixture().await;
    let body = charge("ps-h2", &f.farm.to_string(), "starter", 500_000).to_string();
    let (status, answer) = post(&f, body.as_bytes(), Some(&sign(body.as_bytes())), true).await;
    assert_eq!(
        (status, answer["verdict"].as_str()),
        (200, Some("granted")),
        "{answer}"
    );
    // signed over the base64 text instead of the bytes: refused
    let encoded = base64::engine::general_purpose::STANDARD.encode(body.as_bytes());
    let body = charge("ps-h3", &f.farm.to_string(), "starter", 500_000).to_string();
    let (status, _) = post(&f, body.as_bytes(), Some(&sign(encoded.as_bytes())), true).await;
    assert_eq!(status, 401);
    assert_eq!(balance(&f).await, 500);
}

#[tokio::test]
async fn bad_signatures_are_401_and_write_nothing() {
    let f = fixture().await;
    let body = charge("ps-h4", &f.farm.to_string(), "starter", 500_000).to_string();
    let good = sign(body.as_bytes());
    let altered = body.replace("ps-h4", "ps-h5");
    let cases: Vec<(&str, &str, Option<String>)> = vec![
        ("missing header", &body, None),
        ("empty header", &body, Some(String::new())),
        (
            "another key",
            &body,
            Some(paystack::sign(body.as_bytes(), b"sk_live_not_ours")),
        ),
        ("body altered after signing", &altered, Some(good.clone())),
        ("garbage", &body, Some("sha512=nope".into())),
        (
            "a stale timestamped signature",
            &body,
            Some(paystack::sign_timestamped(
                body.as_bytes(),
                SECRET.as_bytes(),
                Utc::now().timestamp() - 3600,
                "k1",
            )),
        ),
    ];
    for (name, body, signature) in cases {
        let (status, answer) = post(&f, body.as_bytes(), signature.as_deref(), false).await;
        assert_eq!(status, 401, "{name}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_signature", "{name}");
    }
    assert_eq!(events(&f).await, 0, "nothing recorded");
    assert_eq!(balance(&f).await, 0);
    // a header value that is not text: 401 too, not a 400
    let req = {
        let mut req = event("POST", PATH, &[], body.as_bytes(), false);
        req.headers_mut().insert(
            "x-paystack-signature",
            lambda_http::http::HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
        );
        req
    };
    assert_eq!(handle(&f.state, req).await.status().as_u16(), 401);
}

#[tokio::test]
async fn the_timestamped_signature_is_accepted_within_its_window() {
    let f = fixture().await;
    let body = charge("ps-h6", &f.farm.to_string(), "starter", 500_000).to_string();
    let now = Utc.with_ymd_and_hms(2026, 12, 6, 9, 0, 0).unwrap();
    let header = paystack::sign_timestamped(
        body.as_bytes(),
        SECRET.as_bytes(),
        now.timestamp() - 30,
        "k1",
    );
    let req = event(
        "POST",
        PATH,
        &[("x-paystack-signature", &header)],
        body.as_bytes(),
        false,
    );
    let res = handle_at(&f.state, req, now).await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(body_json(&res)["verdict"], "granted");
}

#[tokio::test]
async fn signed_but_unacceptable_events_are_200_with_their_verdict_and_grant_nothing() {
    let f = fixture().await;
    let farm = f.farm.to_string();
    let mut dollars = charge("ps-h7", &farm, "starter", 500_000);
    dollars["data"]["currency"] = "USD".into();
    let cases: Vec<(&str, String, &str)> = vec![
        ("wrong currency", dollars.to_string(), "wrong_currency"),
        (
            "amount not the pack's price",
            charge("ps-h8", &farm, "starter", 50_000).to_string(),
            "amount_mismatch",
        ),
        (
            "unknown pack",
            charge("ps-h9", &farm, "gold", 500_000).to_string(),
            "unknown_pack",
        ),
        (
            "unknown farm",
            charge("ps-h10", &Uuid::new_v4().to_string(), "starter", 500_000).to_string(),
            "unknown_farm",
        ),
        ("malformed JSON", "{\"event\":".into(), "malformed"),
        ("empty body", String::new(), "malformed"),
        (
            "an event the billing ignores",
            json!({"event": "charge.dispute.create", "data": {"reference": "d1"}}).to_string(),
            "ignored",
        ),
    ];
    let n = cases.len() as i64;
    for (name, body, verdict) in cases {
        let (status, answer) = post(&f, body.as_bytes(), Some(&sign(body.as_bytes())), false).await;
        assert_eq!(
            status, 200,
            "{name}: never a 500, and Paystack stops retrying: {answer}"
        );
        assert_eq!(answer["verdict"], verdict, "{name}");
    }
    assert_eq!(events(&f).await, n, "each one recorded");
    assert_eq!(balance(&f).await, 0, "nothing granted");
}

#[tokio::test]
async fn only_post_on_its_one_path() {
    let f = fixture().await;
    assert_routes_are_documented("billing", ROUTES);
    for case in unsupported_methods("billing") {
        let req = event(case.method, &case.path, &[], b"", false);
        assert_method_not_allowed(&case, &handle(&f.state, req).await);
    }
    let req = event("POST", "/payments/stripe", &[], b"{}", false);
    let res = handle(&f.state, req).await;
    assert_eq!(res.status().as_u16(), 404);
    assert_conforms_path("POST", "/payments/stripe", &res);
    let body = charge("ps-h11", &f.farm.to_string(), "starter", 500_000).to_string();
    let too_big = format!("{body}{}", " ".repeat(farmops::payments::MAX_EVENT_BYTES));
    let (status, _) = post(
        &f,
        too_big.as_bytes(),
        Some(&sign(too_big.as_bytes())),
        false,
    )
    .await;
    assert_eq!(status, 413);
    assert_eq!(events(&f).await, 0);
}

#[tokio::test]
async fn the_cold_start_names_a_missing_setting() {
    let url = "postgres://farmops_billing:farmops_billing@127.0.0.1:55432/farmops";
    let err = State::from_lookup(|k| (k == "FARMOPS_BILLING_DATABASE_URL").then(|| url.into()))
        .await
        .err()
        .expect("no key: no cold start");
    assert!(
        err.to_string().contains("FARMOPS_PAYSTACK_SECRET_KEY"),
        "{err}"
    );
    let err = State::from_lookup(|k| (k == "FARMOPS_PAYSTACK_SECRET_KEY").then(|| SECRET.into()))
        .await
        .err()
        .expect("no URL: no cold start");
    assert!(
        err.to_string().contains("FARMOPS_BILLING_DATABASE_URL"),
        "{err}"
    );
}
