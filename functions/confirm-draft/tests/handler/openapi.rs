//! confirm-draft's real responses (success and refusals) conform to docs/openapi.yaml, and the
//! check itself fails on a body that does not.

use farmops_http::testing::openapi::{
    assert_conforms, assert_method_not_allowed, assert_routes_are_documented, conformance_errors,
    parameter_allows, unsupported_methods,
};

use super::*;

const CONFIRM: &str = "/farms/{farm_id}/drafts/{draft_id}/confirm";
const APPROVE: &str = "/farms/{farm_id}/recommendations/{id}/approve";

#[tokio::test]
async fn responses_conform_to_the_openapi_document() -> R {
    let f = fixture().await?;
    let id = f.draft(RecordType::Sale, sale()).await?;
    let path = format!("/farms/{}/drafts/{id}/confirm", f.farm);

    let (status, body, res) = f.post(&path, Some("worker"), &[], None).await;
    assert_eq!(status, 403, "{body}");
    assert_conforms("POST", CONFIRM, &res);
    let (status, _, res) = f.post(&path, None, &[], None).await;
    assert_eq!(status, 401);
    assert_conforms("POST", CONFIRM, &res);
    let (status, _, res) = f.post(&path, Some("owner"), &[], Some("{oops")).await;
    assert_eq!(status, 400);
    assert_conforms("POST", CONFIRM, &res);
    let (status, _, res) = f
        .post(&path, Some("owner"), &[], Some(r#"{"edits": {"item": 5}}"#))
        .await;
    assert_eq!(status, 422);
    assert_conforms("POST", CONFIRM, &res);
    let big = format!(r#"{{"note": "{}"}}"#, "a".repeat(70_000));
    let (status, _, res) = f.post(&path, Some("owner"), &[], Some(&big)).await;
    assert_eq!(status, 413);
    assert_conforms("POST", CONFIRM, &res);
    let other = format!("/farms/{}/drafts/{}/confirm", f.farm, Uuid::new_v4());
    let (status, _, res) = f.post(&other, Some("owner"), &[], None).await;
    assert_eq!(status, 404);
    assert_conforms("POST", CONFIRM, &res);

    let (status, body, res) = f
        .post(&path, Some("manager"), &[("idempotency-key", "k-1")], None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_conforms("POST", CONFIRM, &res);
    let (status, _, res) = f.post(&path, Some("owner"), &[], None).await;
    assert_eq!(status, 409);
    assert_conforms("POST", CONFIRM, &res);

    // The check can fail: the same 200 body without the draft's status, with an extra field,
    // or answered with an undocumented status.
    let mut broken = body.clone();
    broken["draft"].as_object_mut().unwrap().remove("status");
    assert!(!conformance_errors("POST", CONFIRM, 200, &broken).is_empty());
    let mut extra = body.clone();
    extra["draft"]["secret"] = json!(1);
    assert!(!conformance_errors("POST", CONFIRM, 200, &extra).is_empty());
    assert!(!conformance_errors("POST", CONFIRM, 418, &body).is_empty());
    let bad_error = json!({"error": {"code": "oops", "message": "x"}});
    assert!(!conformance_errors("POST", CONFIRM, 404, &bad_error).is_empty());
    assert!(conformance_errors("POST", CONFIRM, 200, &body).is_empty());

    let rec = f.recommendation().await?;
    let approve = format!("/farms/{}/recommendations/{rec}/approve", f.farm);
    let (status, _, res) = f.post(&approve, Some("worker"), &[], None).await;
    assert_eq!(status, 403);
    assert_conforms("POST", APPROVE, &res);
    let (status, body, res) = f
        .post(&approve, Some("owner"), &[], Some(r#"{"note": "do it"}"#))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_conforms("POST", APPROVE, &res);
    let (status, _, res) = f.post(&approve, Some("owner"), &[], None).await;
    assert_eq!(status, 409);
    assert_conforms("POST", APPROVE, &res);
    Ok(())
}

/// A schema-driven fuzzer's view of the route table: every route of the document's for
/// confirm-draft is served, and every other method on those paths is a 405 with `Allow`.
#[tokio::test]
async fn other_methods_answer_405_with_allow() -> R {
    let f = fixture().await?;
    assert_routes_are_documented("confirm-draft", confirm_draft::ROUTES);
    let cases = unsupported_methods("confirm-draft");
    assert_eq!(cases.len(), 2 * 7);
    for case in &cases {
        let req = apigw_request(case.method, &case.path, Some("owner"), &[], None);
        assert_method_not_allowed(case, &handle(&f.state, req).await);
    }
    Ok(())
}

/// The `Idempotency-Key` values the document allows are exactly the ones the handler takes:
/// every other one is the documented 400. (Leading and trailing whitespace is left out: HTTP
/// strips it from a field value before any handler sees it.)
#[tokio::test]
async fn idempotency_key_pattern_is_the_one_enforced() -> R {
    let f = fixture().await?;
    let long = "k".repeat(255);
    let too_long = "k".repeat(256);
    let values = [
        "k",
        "retry-1",
        "~!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}",
        &long,
        &too_long,
        "",
        "two words",
        "tab\there",
        "café",
        "ключ",
        "\u{7f}",
    ];
    for value in values {
        let id = f.draft(RecordType::Sale, sale()).await?;
        let path = format!("/farms/{}/drafts/{id}/confirm", f.farm);
        if lambda_http::http::HeaderValue::from_str(value).is_err() {
            // not even a header value (a control character): no HTTP request can carry it
            assert!(!parameter_allows("POST", CONFIRM, "Idempotency-Key", value));
            continue;
        }
        let (status, body, res) = f
            .post(&path, Some("owner"), &[("idempotency-key", value)], None)
            .await;
        let documented = parameter_allows("POST", CONFIRM, "Idempotency-Key", value);
        assert_eq!(status != 400, documented, "{value:?}: {status} {body}");
        if !documented {
            assert_eq!(body["error"]["code"], "bad_request", "{value:?}");
        }
        assert_conforms("POST", CONFIRM, &res);
    }
    Ok(())
}
