//! The confirm-draft handler with real API Gateway HTTP API events against a real PostgreSQL.

mod faults;
mod openapi;

use confirm_draft::{State, handle};
use farmops::{
    decisions::REPLAYED_HEADER,
    drafts::{self, NewDraft},
    recommendations::{self, NewRecommendation},
    records::{self, RecordType},
    testing::TestDb,
};
use farmops_http::{
    IdentitySource,
    testing::{apigw_request, body_json},
};
use serde_json::{Value, json};
use uuid::Uuid;

type R<T = ()> = anyhow::Result<T>;

struct Fixture {
    db: TestDb,
    state: State,
    farm: Uuid,
}

async fn fixture() -> R<Fixture> {
    let db = TestDb::new().await?;
    let farm = db.farm("Green Acres", 0).await?;
    for role in ["owner", "manager", "worker", "viewer"] {
        db.member(farm, role, role).await?;
    }
    let state = State {
        db: db.app.clone(),
        identity: IdentitySource::default(),
    };
    Ok(Fixture { db, state, farm })
}

impl Fixture {
    async fn draft(&self, t: RecordType, payload: Value) -> R<Uuid> {
        let payload = records::validate_payload(t, &payload, chrono::Utc::now().date_naive())?;
        let tx = self.db.app.tenant(self.farm).await?;
        let d = drafts::create_draft(
            &tx,
            &NewDraft {
                ai_run_id: None,
                payload: &payload,
                summary: None,
                created_by: "assistant",
            },
        )
        .await?;
        tx.commit().await?;
        Ok(d.id)
    }

    async fn recommendation(&self) -> R<Uuid> {
        let tx = self.db.app.tenant(self.farm).await?;
        let r = recommendations::create_recommendation(
            &tx,
            &NewRecommendation {
                ai_run_id: None,
                title: "Move the layers",
                body: "Pen 2 is too hot in the afternoon.",
                created_by: "assistant",
            },
        )
        .await?;
        tx.commit().await?;
        Ok(r.id)
    }

    async fn post(
        &self,
        path: &str,
        user: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> (u16, Value, lambda_http::Response<lambda_http::Body>) {
        let res = handle(
            &self.state,
            apigw_request("POST", path, user, headers, body),
        )
        .await;
        farmops_http::testing::openapi::assert_conforms_path("POST", path, &res);
        (res.status().as_u16(), body_json(&res), res)
    }

    async fn draft_status(&self, id: Uuid) -> R<String> {
        let tx = self.db.app.tenant(self.farm).await?;
        Ok(drafts::get_draft(&tx, id).await?.status.to_string())
    }

    async fn records(&self, table: &str) -> R<i64> {
        let owner = self.db.owner_client().await?;
        let rows = owner
            .query_typed(&format!("SELECT count(*) FROM {table}"), &[])
            .await?;
        Ok(rows[0].get(0))
    }
}

fn sale() -> Value {
    json!({"item": "eggs", "quantity": 30, "unit": "crate", "amount_kobo": 4_500_000})
}

/// A payload as a draft holds it: validated, so normalised (`occurred_on` defaulted to today).
fn stored(t: RecordType, payload: Value) -> Value {
    records::validate_payload(t, &payload, chrono::Utc::now().date_naive())
        .expect("a valid payload")
        .into_value()
}

#[tokio::test]
async fn confirm_writes_the_record_and_returns_draft_and_record() -> R {
    let f = fixture().await?;
    let id = f.draft(RecordType::Sale, sale()).await?;
    let path = format!("/farms/{}/drafts/{id}/confirm", f.farm);
    let (status, body, _) = f
        .post(
            &path,
            Some("manager"),
            &[],
            Some(r#"{"note": "checked the receipt"}"#),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["draft"]["status"], "confirmed");
    assert_eq!(body["draft"]["decided_by"], "manager");
    assert_eq!(body["draft"]["decision_note"], "checked the receipt");
    assert!(body["draft"]["decided_at"].is_string());
    assert_eq!(body["draft"]["payload"], stored(RecordType::Sale, sale()));
    assert_eq!(body["record"]["amount_kobo"], 4_500_000);
    assert_eq!(body["record"]["source"], "ai_draft");
    assert_eq!(body["record"]["draft_id"], id.to_string());
    assert_eq!(f.records("sales").await?, 1);
    // A second decision: 409 with the current status.
    let (status, body, _) = f.post(&path, Some("owner"), &[], None).await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "conflict");
    assert_eq!(body["error"]["status"], "confirmed");
    Ok(())
}

#[tokio::test]
async fn confirm_with_edits_keeps_both_payloads() -> R {
    let f = fixture().await?;
    let id = f.draft(RecordType::Mortality, json!({"count": 4})).await?;
    let path = format!("/farms/{}/drafts/{id}/confirm", f.farm);
    // Invalid edits: 422, still pending, nothing written.
    let (status, body, _) = f
        .post(
            &path,
            Some("owner"),
            &[],
            Some(r#"{"edits": {"count": 0}}"#),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["fields"][0]["field"], "count");
    assert_eq!(f.draft_status(id).await?, "pending");
    assert_eq!(f.records("mortality_events").await?, 0);
    let (status, body, _) = f
        .post(
            &path,
            Some("owner"),
            &[],
            Some(r#"{"edits": {"count": 5, "cause": "heat"}}"#),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["draft"]["payload"],
        stored(RecordType::Mortality, json!({"count": 4}))
    );
    assert_eq!(body["draft"]["edited_payload"]["count"], 5);
    assert_eq!(body["record"]["count"], 5);
    assert_eq!(body["record"]["cause"], "heat");
    Ok(())
}

#[tokio::test]
async fn same_idempotency_key_replays_the_first_response() -> R {
    let f = fixture().await?;
    let id = f
        .draft(
            RecordType::Expense,
            json!({"category": "feed", "amount_kobo": 900_000, "description": "mash"}),
        )
        .await?;
    let path = format!("/farms/{}/drafts/{id}/confirm", f.farm);
    let key = [("Idempotency-Key", "7d4c1f3e-confirm")];
    let (s1, b1, r1) = f.post(&path, Some("owner"), &key, None).await;
    let (s2, b2, r2) = f.post(&path, Some("owner"), &key, None).await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(b1, b2, "identical responses");
    let text = |r: &lambda_http::Response<lambda_http::Body>| match r.body() {
        lambda_http::Body::Text(t) => t.clone(),
        other => panic!("expected a text body, got {other:?}"),
    };
    assert_eq!(text(&r1), text(&r2), "byte for byte");
    assert!(r1.headers().get(REPLAYED_HEADER).is_none());
    assert_eq!(r2.headers()[REPLAYED_HEADER], "true");
    assert_eq!(f.records("expenses").await?, 1);
    // The same key with another body: 422.
    let (s3, b3, _) = f
        .post(&path, Some("owner"), &key, Some(r#"{"note": "x"}"#))
        .await;
    assert_eq!(s3, 422, "{b3}");
    // A malformed key: 400.
    let (s4, _, _) = f
        .post(&path, Some("owner"), &[("Idempotency-Key", "a b")], None)
        .await;
    assert_eq!(s4, 400);
    Ok(())
}

#[tokio::test]
async fn approve_a_recommendation_owner_and_manager_only() -> R {
    let f = fixture().await?;
    for (user, want) in [("viewer", 403), ("worker", 403), ("manager", 200)] {
        let id = f.recommendation().await?;
        let path = format!("/farms/{}/recommendations/{id}/approve", f.farm);
        let (status, body, _) = f.post(&path, Some(user), &[], None).await;
        assert_eq!(status, want, "{user}: {body}");
        if want == 200 {
            assert_eq!(body["recommendation"]["status"], "approved");
            assert_eq!(body["recommendation"]["decided_by"], user);
        }
    }
    Ok(())
}

#[tokio::test]
async fn roles_and_tenancy() -> R {
    let f = fixture().await?;
    let other = f.db.farm("Elsewhere", 0).await?;
    f.db.member(other, "stranger", "owner").await?;
    let id = f.draft(RecordType::Sale, sale()).await?;
    let path = format!("/farms/{}/drafts/{id}/confirm", f.farm);
    for (user, want) in [("viewer", 403), ("worker", 403), ("stranger", 404)] {
        let (status, body, _) = f.post(&path, Some(user), &[], None).await;
        assert_eq!(status, want, "{user}: {body}");
    }
    // The stranger through their own farm: the draft is not theirs.
    let (status, _, _) = f
        .post(
            &format!("/farms/{other}/drafts/{id}/confirm"),
            Some("stranger"),
            &[],
            None,
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(f.draft_status(id).await?, "pending");
    assert_eq!(f.records("sales").await?, 0);
    Ok(())
}

#[tokio::test]
async fn bad_requests_get_their_status_never_500() -> R {
    let f = fixture().await?;
    let id = f
        .draft(RecordType::Note, json!({"body": "gate fixed"}))
        .await?;
    let path = format!("/farms/{}/drafts/{id}/confirm", f.farm);
    let big = format!(r#"{{"note": "{}"}}"#, "x".repeat(70_000));
    let cases: Vec<(String, Option<&str>, Option<&str>, u16)> = vec![
        (path.clone(), Some("owner"), Some("{not json"), 400),
        (path.clone(), Some("owner"), Some("[1, 2"), 400),
        (path.clone(), Some("owner"), Some(r#"{"edits": 5}"#), 422),
        (
            path.clone(),
            Some("owner"),
            Some(r#"{"farm_id": "x"}"#),
            422,
        ),
        (path.clone(), Some("owner"), Some(r#"{"note": 7}"#), 422),
        (path.clone(), Some("owner"), Some(big.as_str()), 413),
        (path.clone(), None, None, 401),
        (
            format!("/farms/{}/drafts/not-a-uuid/confirm", f.farm),
            Some("owner"),
            None,
            404,
        ),
        (
            format!("/farms/not-a-uuid/drafts/{id}/confirm"),
            Some("owner"),
            None,
            404,
        ),
        (
            format!("/farms/{}/drafts/{}/confirm", f.farm, Uuid::new_v4()),
            Some("owner"),
            None,
            404,
        ),
        (
            format!("/farms/{}/drafts/{id}/discard", f.farm),
            Some("owner"),
            None,
            404,
        ),
        (
            format!(
                "/farms/{}/recommendations/{}/approve",
                f.farm,
                Uuid::new_v4()
            ),
            Some("owner"),
            None,
            404,
        ),
    ];
    for (path, user, body, want) in cases {
        let (status, json, _) = f.post(&path, user, &[], body).await;
        assert_eq!(status, want, "{path} {body:?}: {json}");
        assert!(json["error"]["code"].is_string(), "{json}");
    }
    let res = handle(
        &f.state,
        apigw_request("GET", &path, Some("owner"), &[], None),
    )
    .await;
    farmops_http::testing::openapi::assert_conforms_path("GET", &path, &res);
    assert_eq!(res.status(), 405, "only POST is served");
    assert_eq!(res.headers()["allow"], "POST");
    assert_eq!(f.draft_status(id).await?, "pending", "nothing was decided");
    Ok(())
}
