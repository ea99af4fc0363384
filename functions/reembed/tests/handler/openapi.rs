//! The reembed function's real responses (success and every refusal, the embedder's failures
//! through the real Bedrock client against a local stub) conform to docs/openapi.yaml, and the
//! check itself fails on bodies that do not.

use farmops::{
    credits,
    embed::TitanEmbedder,
    testing::converse::{ConverseStub, Scripted},
};
use farmops_http::testing::openapi::{
    assert_conforms, assert_method_not_allowed, assert_routes_are_documented, conformance_errors,
    unsupported_methods,
};
use lambda_http::{Body, Response};

use super::*;

const DOCUMENTS: &str = "/farms/{farm_id}/documents";
const DOCUMENT: &str = "/farms/{farm_id}/documents/{id}";
const REEMBED: &str = "/farms/{farm_id}/reembed";

/// Sends one request and checks the answer's status and its conformance to `template`.
async fn checked(
    state: &State,
    method: &str,
    template: &str,
    path: &str,
    user: Option<&str>,
    body: Option<&str>,
    want: u16,
) -> Response<Body> {
    let res = handle(state, apigw_request(method, path, user, &[], body)).await;
    assert_eq!(
        res.status().as_u16(),
        want,
        "{method} {path} as {user:?}: {}",
        body_json(&res)
    );
    assert_conforms(method, template, &res);
    res
}

/// The real Titan embedder against a Bedrock stand-in that answers every InvokeModel with
/// `status` and the error type `error_type` (how Bedrock names its errors).
async fn failing_titan(status: u16, error_type: &'static str) -> R<Arc<TitanEmbedder>> {
    let stub =
        ConverseStub::start_on(vec![Scripted::error(status, error_type); 8], "/invoke").await?;
    Ok(Arc::new(stub.titan().await))
}

#[tokio::test]
async fn documents_and_reembed_conform_to_the_openapi_document() -> R {
    let (db, state, farm) = fixture().await?;
    let documents = format!("/farms/{farm}/documents");
    let doc =
        json!({"title": "Irrigation", "body": "Water the tomatoes at dawn in July."}).to_string();

    // POST documents: 201 and every refusal.
    let res = checked(
        &state,
        "POST",
        DOCUMENTS,
        &documents,
        Some("worker"),
        Some(&doc),
        201,
    )
    .await;
    let added = body_json(&res);
    assert_eq!(added["chunks"], 1);
    checked(&state, "POST", DOCUMENTS, &documents, None, Some(&doc), 401).await;
    checked(
        &state,
        "POST",
        DOCUMENTS,
        &documents,
        Some("viewer"),
        Some(&doc),
        403,
    )
    .await;
    checked(
        &state,
        "POST",
        DOCUMENTS,
        "/farms/nope/documents",
        Some("worker"),
        Some(&doc),
        404,
    )
    .await;
    let other = db.farm("Other Farm", 100).await?;
    db.member(other, "stranger", "owner").await?;
    checked(
        &state,
        "POST",
        DOCUMENTS,
        &documents,
        Some("stranger"),
        Some(&doc),
        404,
    )
    .await;
    for bad in ["{", "", "\"\u{0}"] {
        checked(
            &state,
            "POST",
            DOCUMENTS,
            &documents,
            Some("worker"),
            Some(bad),
            400,
        )
        .await;
    }
    for invalid in [
        json!({"title": "", "body": "x"}),
        json!({"title": "t", "body": "   "}),
        json!({"title": "t".repeat(301), "body": "x"}),
        json!({"title": "t"}),
        json!({"title": "t", "body": "x", "tags": []}),
        json!(["t", "x"]),
    ] {
        let res = checked(
            &state,
            "POST",
            DOCUMENTS,
            &documents,
            Some("worker"),
            Some(&invalid.to_string()),
            422,
        )
        .await;
        assert!(
            !body_json(&res)["error"]["fields"]
                .as_array()
                .unwrap()
                .is_empty()
        );
    }
    let huge = json!({"title": "t", "body": "x".repeat(1024 * 1024)}).to_string();
    checked(
        &state,
        "POST",
        DOCUMENTS,
        &documents,
        Some("worker"),
        Some(&huge),
        413,
    )
    .await;
    let broke = db.farm("Broke Farm", 0).await?;
    db.member(broke, "worker", "worker").await?;
    let res = checked(
        &state,
        "POST",
        DOCUMENTS,
        &format!("/farms/{broke}/documents"),
        Some("worker"),
        Some(&doc),
        402,
    )
    .await;
    assert_eq!(body_json(&res)["error"]["balance"], 0);

    // The embedder fails: 502 (a model error) and 503 (throttled), through the real client.
    for (status, error_type, want) in [
        (500, "InternalServerException", 502),
        (429, "ThrottlingException", 503),
    ] {
        let failing = State {
            db: state.db.clone(),
            identity: IdentitySource::default(),
            embedder: failing_titan(status, error_type).await?,
        };
        checked(
            &failing,
            "POST",
            DOCUMENTS,
            &documents,
            Some("worker"),
            Some(&doc),
            want,
        )
        .await;
    }

    // POST reembed: 200 when the model changed (rows re-embedded), 200 with the reason when
    // the farm cannot pay, and every refusal.
    let reembed = format!("/farms/{farm}/reembed");
    checked(&state, "POST", REEMBED, &reembed, None, None, 401).await;
    checked(&state, "POST", REEMBED, &reembed, Some("worker"), None, 403).await;
    checked(
        &state,
        "POST",
        REEMBED,
        &reembed,
        Some("stranger"),
        None,
        404,
    )
    .await;
    let res = checked(
        &state,
        "POST",
        REEMBED,
        &reembed,
        Some("manager"),
        None,
        200,
    )
    .await;
    assert_eq!(body_json(&res)["reembedded"], 0, "nothing stale yet");
    let titan_named = State {
        db: state.db.clone(),
        identity: IdentitySource::default(),
        embedder: Arc::new(OfflineEmbedder::with_model_id(TITAN_MODEL_ID)),
    };
    let res = checked(
        &titan_named,
        "POST",
        REEMBED,
        &reembed,
        Some("owner"),
        None,
        200,
    )
    .await;
    let report = body_json(&res);
    assert_eq!(
        (report["reembedded"].clone(), report["skipped"].clone()),
        (json!(1), json!(null))
    );
    // Drained to zero, the farm's next sweep stops at the reservation and says why.
    let tx = db.owner.tenant(farm).await?;
    let balance = credits::audit_ledger(&tx).await?.credit_balance;
    credits::adjust_credits(&tx, -balance, "operator", "drained for the test").await?;
    tx.commit().await?;
    let res = checked(&state, "POST", REEMBED, &reembed, Some("owner"), None, 200).await;
    let report = body_json(&res);
    assert_eq!(report["skipped"], "insufficient_credits", "{report}");
    assert_eq!(report["reembedded"], 0);

    // DELETE a document: 200, then every refusal.
    let id = added["id"].as_str().unwrap().to_string();
    let one = format!("/farms/{farm}/documents/{id}");
    checked(&state, "DELETE", DOCUMENT, &one, None, None, 401).await;
    checked(&state, "DELETE", DOCUMENT, &one, Some("worker"), None, 403).await;
    checked(
        &state,
        "DELETE",
        DOCUMENT,
        &one,
        Some("stranger"),
        None,
        404,
    )
    .await;
    let res = checked(&state, "DELETE", DOCUMENT, &one, Some("manager"), None, 200).await;
    assert_eq!(body_json(&res), json!({"deleted": id}));
    checked(&state, "DELETE", DOCUMENT, &one, Some("manager"), None, 404).await;
    let malformed = format!("/farms/{farm}/documents/nope");
    checked(
        &state,
        "DELETE",
        DOCUMENT,
        &malformed,
        Some("manager"),
        None,
        404,
    )
    .await;

    // The check can fail: a missing field, an extra one, a wrong type, an unknown skip
    // reason, an undocumented status, an error with the wrong code.
    assert!(conformance_errors("POST", DOCUMENTS, 201, &added).is_empty());
    let mut broken = added.clone();
    broken.as_object_mut().unwrap().remove("run_id");
    assert!(!conformance_errors("POST", DOCUMENTS, 201, &broken).is_empty());
    let mut broken = added.clone();
    broken["title"] = json!("Irrigation");
    assert!(!conformance_errors("POST", DOCUMENTS, 201, &broken).is_empty());
    let mut broken = added.clone();
    broken["chunks"] = json!("1");
    assert!(!conformance_errors("POST", DOCUMENTS, 201, &broken).is_empty());
    assert!(!conformance_errors("POST", DOCUMENTS, 200, &added).is_empty());
    let mut broken = report.clone();
    broken["skipped"] = json!("bored");
    assert!(!conformance_errors("POST", REEMBED, 200, &broken).is_empty());
    assert!(!conformance_errors("DELETE", DOCUMENT, 200, &json!({"deleted": 1})).is_empty());
    let wrong = json!({"error": {"code": "not_found", "message": "x"}});
    assert!(!conformance_errors("POST", DOCUMENTS, 402, &wrong).is_empty());
    Ok(())
}

/// Every HTTP route of the document's for reembed is served, and every other method on those
/// paths is a 405 with `Allow`, also through the raw-event entry point the Lambda runs.
#[tokio::test]
async fn other_methods_answer_405_with_allow() -> R {
    let (_db, state, _farm) = fixture().await?;
    assert_routes_are_documented("reembed", reembed::ROUTES);
    let cases = unsupported_methods("reembed");
    assert_eq!(cases.len(), 3 * 7);
    for case in &cases {
        let req = apigw_request(case.method, &case.path, Some("owner"), &[], None);
        assert_method_not_allowed(case, &handle(&state, req).await);
    }
    let case = cases
        .iter()
        .find(|c| c.method == "GET" && c.path.ends_with("/documents"))
        .unwrap();
    let out = handle_event(&state, apigw_event("GET", &case.path, Some("owner"), None)).await?;
    assert_eq!(out["statusCode"], 405, "{out}");
    assert_eq!(out["headers"]["allow"], "POST", "{out}");
    Ok(())
}
