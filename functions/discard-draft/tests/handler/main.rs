//! The discard-draft handler with real API Gateway HTTP API events against a real PostgreSQL.

mod faults;
mod openapi;

use discard_draft::{State, handle};
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
                title: "Sell the old layers",
                body: "Production dropped below 60%.",
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

    async fn recommendation_status(&self, id: Uuid) -> R<String> {
        let tx = self.db.app.tenant(self.farm).await?;
        Ok(recommendations::get_recommendation(&tx, id)
            .await?
            .status
            .to_string())
    }
}

#[tokio::test]
async fn discard_with_a_reason() -> R {
    let f = fixture().await?;
    let id = f.draft(RecordType::Water, json!({"litres": 300})).await?;
    let path = format!("/farms/{}/drafts/{id}/discard", f.farm);
    let (status, body, _) = f
        .post(
            &path,
            Some("worker"),
            &[],
            Some(r#"{"reason": "  already logged  "}"#),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["draft"]["status"], "discarded");
    assert_eq!(body["draft"]["decided_by"], "worker");
    assert_eq!(body["draft"]["decision_note"], "already logged");
    assert!(body["draft"]["decided_at"].is_string());
    let stored = records::validate_payload(
        RecordType::Water,
        &json!({"litres": 300}),
        chrono::Utc::now().date_naive(),
    )?;
    assert_eq!(body["draft"]["payload"], stored.into_value());
    assert!(body.get("record").is_none());
    let (status, body, _) = f
        .post(&path, Some("owner"), &[], Some(r#"{"reason": "again"}"#))
        .await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["status"], "discarded");
    // The confirm route is not served here.
    let (status, _, _) = f
        .post(
            &format!("/farms/{}/drafts/{id}/confirm", f.farm),
            Some("owner"),
            &[],
            None,
        )
        .await;
    assert_eq!(status, 404);
    Ok(())
}

#[tokio::test]
async fn a_worker_may_not_discard_money_and_a_viewer_nothing() -> R {
    let f = fixture().await?;
    let expense = f
        .draft(
            RecordType::Expense,
            json!({"category": "labour", "amount_kobo": 500_000, "description": "weeding"}),
        )
        .await?;
    let note = f.draft(RecordType::Note, json!({"body": "rain"})).await?;
    let reason = Some(r#"{"reason": "wrong"}"#);
    for (user, id, want) in [
        ("worker", expense, 403),
        ("viewer", note, 403),
        ("stranger", note, 404),
    ] {
        let (status, body, _) = f
            .post(
                &format!("/farms/{}/drafts/{id}/discard", f.farm),
                Some(user),
                &[],
                reason,
            )
            .await;
        assert_eq!(status, want, "{user}: {body}");
    }
    assert_eq!(f.draft_status(expense).await?, "pending");
    assert_eq!(f.draft_status(note).await?, "pending");
    Ok(())
}

#[tokio::test]
async fn reject_a_recommendation() -> R {
    let f = fixture().await?;
    let id = f.recommendation().await?;
    let path = format!("/farms/{}/recommendations/{id}/reject", f.farm);
    let (status, _, _) = f
        .post(&path, Some("worker"), &[], Some(r#"{"reason": "no"}"#))
        .await;
    assert_eq!(status, 403);
    let (status, body, _) = f.post(&path, Some("owner"), &[], Some("{}")).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["fields"][0]["field"], "reason");
    assert_eq!(f.recommendation_status(id).await?, "pending");
    let key = [("Idempotency-Key", "reject-1")];
    let body = Some(r#"{"reason": "prices are up next month"}"#);
    let (s1, b1, _) = f.post(&path, Some("owner"), &key, body).await;
    let (s2, b2, r2) = f.post(&path, Some("owner"), &key, body).await;
    assert_eq!((s1, s2), (200, 200), "{b1}");
    assert_eq!(b1, b2);
    assert_eq!(r2.headers()[REPLAYED_HEADER], "true");
    assert_eq!(b1["recommendation"]["status"], "rejected");
    assert_eq!(
        b1["recommendation"]["decision_note"],
        "prices are up next month"
    );
    assert_eq!(f.recommendation_status(id).await?, "rejected");
    Ok(())
}

#[tokio::test]
async fn bad_requests_get_their_status_never_500() -> R {
    let f = fixture().await?;
    let id = f
        .draft(RecordType::Task, json!({"title": "fix the gate"}))
        .await?;
    let path = format!("/farms/{}/drafts/{id}/discard", f.farm);
    let long = format!(r#"{{"reason": "{}"}}"#, "r".repeat(501));
    let big = format!(r#"{{"reason": "{}"}}"#, "r".repeat(70_000));
    let cases: Vec<(String, Option<&str>, Option<&str>, u16)> = vec![
        (path.clone(), Some("owner"), Some("{not json"), 400),
        (path.clone(), Some("owner"), Some(r#"{"reason": "x""#), 400),
        (path.clone(), Some("owner"), None, 422),
        (path.clone(), Some("owner"), Some("{}"), 422),
        (path.clone(), Some("owner"), Some(r#"{"reason": ""}"#), 422),
        (
            path.clone(),
            Some("owner"),
            Some(r#"{"reason": "   "}"#),
            422,
        ),
        (
            path.clone(),
            Some("owner"),
            Some(r#"{"reason": null}"#),
            422,
        ),
        (path.clone(), Some("owner"), Some(r#"{"reason": 42}"#), 422),
        (
            path.clone(),
            Some("owner"),
            Some(r#"{"reason": "x", "extra": 1}"#),
            422,
        ),
        (path.clone(), Some("owner"), Some(r#"["a reason"]"#), 422),
        (path.clone(), Some("owner"), Some(r#""a reason""#), 422),
        (path.clone(), Some("owner"), Some(long.as_str()), 422),
        (path.clone(), Some("owner"), Some(big.as_str()), 413),
        (path.clone(), None, Some(r#"{"reason": "x"}"#), 401),
        (
            format!("/farms/{}/drafts/nope/discard", f.farm),
            Some("owner"),
            Some(r#"{"reason": "x"}"#),
            404,
        ),
        (
            format!(
                "/farms/{}/recommendations/{}/reject",
                f.farm,
                Uuid::new_v4()
            ),
            Some("owner"),
            Some(r#"{"reason": "x"}"#),
            404,
        ),
        (
            format!("/farms/{}/drafts/{id}/discard/extra", f.farm),
            Some("owner"),
            Some(r#"{"reason": "x"}"#),
            404,
        ),
    ];
    for (path, user, body, want) in cases {
        let (status, json, _) = f.post(&path, user, &[], body).await;
        assert_eq!(status, want, "{path} {body:?}: {json}");
        assert!(json["error"]["code"].is_string(), "{json}");
    }
    assert_eq!(f.draft_status(id).await?, "pending", "nothing was decided");
    Ok(())
}
