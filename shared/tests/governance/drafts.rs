//! Drafts: confirm with provenance, edits, and races between decisions.

use chrono::Utc;
use farmops::{
    Error,
    credits::{self, Feature, NewRun},
    db::Db,
    drafts::{self, Decider, NewDraft},
    membership::Role,
    records::{self, RecordType},
    testing::TestDb,
};
use serde_json::{Value, json};
use uuid::Uuid;

const OWNER: Decider<'static> = Decider {
    user_id: "owner-1",
    role: Role::Owner,
};

async fn draft(db: &Db, farm: Uuid, record_type: RecordType, payload: Value) -> Uuid {
    let tx = db.tenant(farm).await.unwrap();
    let run = credits::reserve_credits(
        &tx,
        &NewRun {
            feature: Feature::Chat,
            model: "offline-farm-assistant",
            user_id: Some("worker-1"),
            credits: 1,
            request_summary: None,
        },
    )
    .await
    .unwrap();
    let payload =
        records::validate_payload(record_type, &payload, Utc::now().date_naive()).unwrap();
    let d = drafts::create_draft(
        &tx,
        &NewDraft {
            ai_run_id: Some(run.run_id),
            payload: &payload,
            summary: None,
            created_by: "worker-1",
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    d.id
}

async fn confirm(
    db: &Db,
    farm: Uuid,
    id: Uuid,
    by: Decider<'_>,
    edits: Option<&Value>,
) -> Result<drafts::Confirmed, Error> {
    let tx = db.tenant(farm).await?;
    let c =
        drafts::confirm_draft(&tx, id, by, edits, Some("checked"), Utc::now().date_naive()).await?;
    tx.commit().await?;
    Ok(c)
}

async fn discard(db: &Db, farm: Uuid, id: Uuid) -> Result<drafts::Draft, Error> {
    let tx = db.tenant(farm).await?;
    let d = drafts::discard_draft(&tx, id, OWNER, "wrong pen").await?;
    tx.commit().await?;
    Ok(d)
}

async fn count(db: &Db, farm: Uuid, table: &str) -> i64 {
    crate::exec(db, farm, &format!("SELECT count(*) FROM {table}"))
        .await
        .unwrap()[0]
        .get(0)
}

#[tokio::test]
async fn confirm_writes_the_record_with_provenance() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("A", 10).await.unwrap();
    let id = draft(
        &db.app,
        farm,
        RecordType::Sale,
        json!({"item": "eggs", "quantity": 20, "unit": "crate", "amount_kobo": 4_500_000}),
    )
    .await;
    let edits = json!({"item": "eggs", "quantity": 20, "unit": "crate", "amount_kobo": 4_400_000});
    let c = confirm(&db.app, farm, id, OWNER, Some(&edits))
        .await
        .unwrap();
    assert_eq!(c.draft.status, drafts::DraftStatus::Confirmed);
    assert_eq!(c.draft.decided_by.as_deref(), Some("owner-1"));
    assert_eq!(
        c.draft.payload["amount_kobo"], 4_500_000,
        "the AI's payload is kept"
    );
    assert_eq!(
        c.draft.edited_payload.as_ref().unwrap()["amount_kobo"],
        4_400_000
    );
    assert_eq!(
        c.record["amount_kobo"], 4_400_000,
        "the record is the edited payload"
    );
    assert_eq!(c.record["source"], "ai_draft");
    assert_eq!(c.record["draft_id"], id.to_string());
    assert_eq!(c.record["confirmed_by"], "owner-1");
    assert_eq!(c.record["created_by"], "worker-1");
    assert_eq!(
        c.record["ai_run_id"],
        c.draft.ai_run_id.unwrap().to_string()
    );
    assert_eq!(c.draft.record_id.unwrap().to_string(), c.record["id"]);
    assert!(
        matches!(confirm(&db.app, farm, id, OWNER, None).await, Err(Error::Conflict { status, .. }) if status == "confirmed")
    );
    assert!(matches!(
        discard(&db.app, farm, id).await,
        Err(Error::Conflict { .. })
    ));
}

#[tokio::test]
async fn refusals_leave_the_draft_pending_and_write_nothing() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("A", 10).await.unwrap();
    let other = db.farm("B", 10).await.unwrap();
    let id = draft(
        &db.app,
        farm,
        RecordType::Expense,
        json!({"category": "vaccine", "amount_kobo": 1_250_000, "description": "vaccines"}),
    )
    .await;

    let bad = json!({"category": "vaccine", "amount_kobo": 12.5, "description": "vaccines"});
    assert_eq!(
        confirm(&db.app, farm, id, OWNER, Some(&bad))
            .await
            .unwrap_err()
            .status(),
        422
    );
    let worker = Decider {
        user_id: "w",
        role: Role::Worker,
    };
    assert_eq!(
        confirm(&db.app, farm, id, worker, None)
            .await
            .unwrap_err()
            .status(),
        403,
        "expense needs a manager"
    );
    assert_eq!(
        confirm(&db.app, other, id, OWNER, None)
            .await
            .unwrap_err()
            .status(),
        404,
        "another farm's draft"
    );
    let tx = db.app.tenant(farm).await.unwrap();
    assert_eq!(
        drafts::discard_draft(&tx, id, OWNER, "   ")
            .await
            .unwrap_err()
            .status(),
        422,
        "a reason is required"
    );
    drop(tx);
    assert_eq!(count(&db.app, farm, "expenses").await, 0);
    let tx = db.app.tenant(farm).await.unwrap();
    assert_eq!(
        drafts::get_draft(&tx, id).await.unwrap().status,
        drafts::DraftStatus::Pending
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_decisions_have_exactly_one_outcome() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("A", 100).await.unwrap();
    let pool = db.app_pool(4).unwrap();
    for round in 0..40 {
        let id = draft(
            &pool,
            farm,
            RecordType::Mortality,
            json!({"count": 3, "location": "pen 2"}),
        )
        .await;
        let (a, b) = if round % 2 == 0 {
            let (a, b) = tokio::join!(
                confirm(&pool, farm, id, OWNER, None),
                confirm(&pool, farm, id, OWNER, None)
            );
            (a.map(|_| ()), b.map(|_| ()))
        } else {
            let (a, b) = tokio::join!(
                confirm(&pool, farm, id, OWNER, None),
                discard(&pool, farm, id)
            );
            (a.map(|_| ()), b.map(|_| ()))
        };
        let oks = [&a, &b].iter().filter(|r| r.is_ok()).count();
        assert_eq!(oks, 1, "round {round}: {a:?} / {b:?}");
        let loser = if a.is_err() { a } else { b };
        assert_eq!(loser.unwrap_err().status(), 409, "round {round}");
    }
    let rows = crate::exec(
        &pool,
        farm,
        "SELECT count(*), count(DISTINCT draft_id) FROM mortality_events",
    )
    .await
    .unwrap();
    let (records, distinct): (i64, i64) = (rows[0].get(0), rows[0].get(1));
    assert_eq!(records, distinct, "at most one record per draft");
    assert_eq!(
        records,
        20 + count_confirmed_in_races(&pool, farm).await - 20
    );
}

async fn count_confirmed_in_races(db: &Db, farm: Uuid) -> i64 {
    crate::exec(
        db,
        farm,
        "SELECT count(*) FROM assistant_drafts WHERE status = 'confirmed'",
    )
    .await
    .unwrap()[0]
        .get(0)
}

#[tokio::test]
async fn every_record_type_confirms_into_its_table() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("A", 20).await.unwrap();
    let cases = [
        (
            RecordType::Mortality,
            json!({"count": 3, "location": "pen 2", "cause": "heat"}),
        ),
        (
            RecordType::FeedUse,
            json!({"quantity": 4, "unit": "bag", "feed_type": "layer mash"}),
        ),
        (
            RecordType::Sale,
            json!({"item": "eggs", "quantity": 20, "unit": "crate", "amount_kobo": 4_500_000, "buyer": "Mama Ngozi"}),
        ),
        (
            RecordType::Expense,
            json!({"category": "vaccine", "amount_kobo": 1_250_000, "description": "Newcastle vaccine"}),
        ),
        (
            RecordType::Water,
            json!({"litres": 250.5, "location": "house B"}),
        ),
        (
            RecordType::Weight,
            json!({"average_grams": 350, "sample_size": 20, "location": "pond 3"}),
        ),
        (
            RecordType::Symptom,
            json!({"symptoms": "coughing", "affected_count": 12, "severity": "mild", "location": "house B"}),
        ),
        (RecordType::Note, json!({"body": "fence mended"})),
        (
            RecordType::Task,
            json!({"title": "vaccinate", "due_on": "2030-01-06"}),
        ),
    ];
    for (record_type, payload) in cases {
        let id = draft(&db.app, farm, record_type, payload.clone()).await;
        let c = confirm(&db.app, farm, id, OWNER, None)
            .await
            .unwrap_or_else(|e| panic!("{record_type}: {e:?}"));
        for (field, value) in payload.as_object().unwrap() {
            let stored = &c.record[field];
            let same = stored == value
                || stored
                    .as_f64()
                    .zip(value.as_f64())
                    .is_some_and(|(a, b)| (a - b).abs() < 1e-9);
            assert!(same, "{record_type}.{field}: stored {stored}, sent {value}");
        }
        let table = record_type.table();
        let n: i64 = crate::exec(
            &db.app,
            farm,
            &format!("SELECT count(*) FROM {table} WHERE draft_id = '{id}'"),
        )
        .await
        .unwrap()[0]
            .get(0);
        assert_eq!(n, 1, "{table}");
    }
}

/// A confirm note is stored trimmed, and a blank one as no note (`farmops::text`'s rule, the
/// one approving a recommendation follows).
#[tokio::test]
async fn confirm_stores_the_note_trimmed_and_a_blank_one_as_none() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("A", 10).await.unwrap();
    for (note, stored) in [
        (
            Some("  checked the receipt \n"),
            Some("checked the receipt"),
        ),
        (Some("   "), None),
        (Some(""), None),
        (None, None),
    ] {
        let id = draft(&db.app, farm, RecordType::Water, json!({"litres": 300})).await;
        let tx = db.app.tenant(farm).await.unwrap();
        let c = drafts::confirm_draft(&tx, id, OWNER, None, note, Utc::now().date_naive())
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(c.draft.decision_note.as_deref(), stored, "{note:?}");
        let tx = db.app.tenant(farm).await.unwrap();
        let read = drafts::get_draft(&tx, id).await.unwrap();
        assert_eq!(
            read.decision_note.as_deref(),
            stored,
            "{note:?} as read back"
        );
    }
}
