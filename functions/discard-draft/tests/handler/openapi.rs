//! discard-draft's real responses (success and refusals) conform to docs/openapi.yaml.

use farmops_http::testing::openapi::{
    assert_conforms, assert_method_not_allowed, assert_routes_are_documented, unsupported_methods,
};

use super::*;

const DISCARD: &str = "/farms/{farm_id}/drafts/{draft_id}/discard";
const REJECT: &str = "/farms/{farm_id}/recommendations/{id}/reject";

#[tokio::test]
async fn responses_conform_to_the_openapi_document() -> R {
    let f = fixture().await?;
    let id = f
        .draft(
            RecordType::Mortality,
            json!({"count": 3, "location": "pen 2"}),
        )
        .await?;
    let path = format!("/farms/{}/drafts/{id}/discard", f.farm);
    let reason = Some(r#"{"reason": "counted twice"}"#);

    let cases: [(Option<&str>, Option<&str>, u16); 5] = [
        (None, reason, 401),
        (Some("owner"), Some("[1,"), 400),
        (Some("owner"), Some(r#"{"reason": "  "}"#), 422),
        (Some("owner"), None, 422),
        (Some("viewer"), reason, 403),
    ];
    for (user, body, status) in cases {
        let (got, json, res) = f.post(&path, user, &[], body).await;
        assert_eq!(got, status, "{body:?}: {json}");
        assert_conforms("POST", DISCARD, &res);
    }
    let (status, body, res) = f.post(&path, Some("manager"), &[], reason).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["draft"]["status"], "discarded");
    assert_conforms("POST", DISCARD, &res);
    let (status, _, res) = f.post(&path, Some("owner"), &[], reason).await;
    assert_eq!(status, 409);
    assert_conforms("POST", DISCARD, &res);

    let rec = f.recommendation().await?;
    let reject = format!("/farms/{}/recommendations/{rec}/reject", f.farm);
    let (status, body, res) = f.post(&reject, Some("owner"), &[], reason).await;
    assert_eq!(status, 200, "{body}");
    assert_conforms("POST", REJECT, &res);
    let unknown = format!(
        "/farms/{}/recommendations/{}/reject",
        f.farm,
        Uuid::new_v4()
    );
    let (status, _, res) = f.post(&unknown, Some("owner"), &[], reason).await;
    assert_eq!(status, 404);
    assert_conforms("POST", REJECT, &res);
    Ok(())
}

/// Every route of the document's for discard-draft is served, and every other method on
/// those paths is a 405 with `Allow`.
#[tokio::test]
async fn other_methods_answer_405_with_allow() -> R {
    let f = fixture().await?;
    assert_routes_are_documented("discard-draft", discard_draft::ROUTES);
    let cases = unsupported_methods("discard-draft");
    assert_eq!(cases.len(), 2 * 7);
    for case in &cases {
        let req = apigw_request(case.method, &case.path, Some("owner"), &[], None);
        assert_method_not_allowed(case, &handle(&f.state, req).await);
    }
    Ok(())
}
