//! The reembed function's real responses (success and every refusal, the embedder's failures
//! through the real Bedrock client against a local stub) conform to docs/openapi.yaml, and the
//! check itself fails on bodies that do not.

use farmops::{
    aws::BedrockSettings,
    credits,
    embed::TitanEmbedder,
    testing::openapi::{assert_conforms, conformance_errors},
};
use lambda_http::{Body, Response};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

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

/// A Bedrock stand-in that answers every InvokeModel with `status` and the error type
/// `error_type` (how Bedrock names its errors), closing each connection after the answer.
async fn failing_bedrock(status: u16, error_type: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                // The head, then as many body bytes as it announces.
                let (head_end, len) = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..p]).to_ascii_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break (p + 4, len);
                    }
                };
                while buf.len() < head_end + len {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body = r#"{"message":"scripted failure"}"#;
                let out = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n\
                     x-amzn-errortype: {error_type}\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(out.as_bytes()).await;
            });
        }
    });
    url
}

/// The real Titan embedder (aws-sdk-bedrockruntime, one attempt) pointed at `url`.
async fn titan_at(url: String) -> Arc<TitanEmbedder> {
    let base = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "AKIDSTUB",
            "stub-secret",
            None,
            None,
            "stub",
        ))
        .load()
        .await;
    let settings = BedrockSettings {
        endpoint: Some(url),
        max_attempts: 1,
        ..BedrockSettings::default()
    };
    Arc::new(TitanEmbedder::new(
        farmops::aws::bedrock_client_from(&settings, &base).await,
    ))
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
            embedder: titan_at(failing_bedrock(status, error_type).await).await,
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
    let tx = db.app.tenant(farm).await?;
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
