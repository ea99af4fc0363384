//! The clinical rules on what the assistant writes, end to end: a real chat turn (the real
//! Bedrock SDK client against the local Converse stub) on a real database. In one model call
//! the assistant writes an unsafe and a safe recommendation, auto record or draft: the unsafe
//! one is refused (nothing written, a failed `clinical_safety` eval, the model told why in its
//! tool result), the safe one is written.

use std::time::Duration;

use anyhow::Result;
use farmops::{
    autonomy::{self, AutonomySettings, Tier},
    records::RecordType,
    testing::TestDb,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::*;

const TIMEOUT: Duration = Duration::from_secs(2);

async fn set_autonomy(db: &TestDb, farm: Uuid, tier: Tier, auto: &[RecordType]) -> Result<()> {
    let tx = db.owner.tenant(farm).await?;
    autonomy::save_autonomy(
        &tx,
        &AutonomySettings {
            tier,
            auto_categories: auto.iter().copied().collect(),
            ..Default::default()
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// One turn: the model makes the two tool calls `(name, unsafe input)` and `(name, safe
/// input)` in one answer, then replies in words. Returns the response body and the tool
/// results the model got back (in call order).
async fn two_writes(
    db: &TestDb,
    farm: Uuid,
    owner: &str,
    name: &str,
    unsafe_input: Value,
    safe_input: Value,
) -> Result<(Value, Vec<Value>)> {
    let stub = ConverseStub::start(vec![
        Scripted::tool_use(&[
            ("tu-unsafe", name, unsafe_input),
            ("tu-safe", name, safe_input),
        ]),
        Scripted::text("Done. Please call your vet about the sick birds."),
    ])
    .await?;
    let state = state_with(db, stub.model(TIMEOUT).await);
    let (status, body) = chat(
        &state,
        farm,
        owner,
        json!({"message": "the birds are coughing, write it down"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let requests = stub.requests();
    assert_eq!(requests.len(), 2, "one tool round, then the reply");
    let last = requests[1].1["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap();
    let results: Vec<Value> = last["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["toolResult"].clone())
        .collect();
    assert_eq!(results.len(), 2, "{last}");
    assert_eq!(results[0]["toolUseId"], "tu-unsafe");
    assert_eq!(results[1]["toolUseId"], "tu-safe");
    Ok((body, results))
}

/// The refusal the model got: an error naming the clinical filter and `rule`.
fn assert_refused(result: &Value, rule: &str) -> String {
    assert_eq!(result["status"], "error", "{result}");
    let said = result["content"][0]["json"]["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        said.contains("refused by the clinical safety filter, nothing was saved")
            && said.contains(rule),
        "{said}"
    );
    said
}

/// The failed `clinical_safety` evals stored for the farm: (subject, rules that fired).
async fn failed_clinical(db: &TestDb, farm: Uuid) -> Result<Vec<(String, Vec<String>, Value)>> {
    let tx = db.app.tenant(farm).await?;
    let rows = tx
        .query(
            "SELECT details FROM ai_evals WHERE name = 'clinical_safety' AND NOT passed",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let d: Value = r.get(0);
            let rules = d["violations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["rule"].as_str().unwrap().to_string())
                .collect();
            (d["subject"].as_str().unwrap_or("").to_string(), rules, d)
        })
        .collect())
}

#[tokio::test]
async fn an_unsafe_recommendation_is_refused_and_a_safe_one_is_written() -> Result<()> {
    let db = TestDb::new().await?;
    let (farm, owner) = farm(&db, "clinical-rec", 10_000).await?;
    set_autonomy(&db, farm, Tier::Draft, &[]).await?;
    let (body, results) = two_writes(
        &db,
        farm,
        &owner,
        "create_recommendation",
        json!({"title": "Treat the cough", "body": "Give chloramphenicol in the water for 5 days."}),
        json!({"title": "Call the vet", "body": "Call your vet about the coughing birds and keep them apart."}),
    )
    .await?;
    let said = assert_refused(&results[0], "prohibited_substance");
    assert!(
        said.contains("prohibited in food animals by US 21 CFR 530.41, EU 37/2010 Table 2"),
        "the model is told where it is prohibited: {said}"
    );
    assert_ne!(results[1]["status"], "error", "{}", results[1]);

    let recs = body["recommendations"].as_array().unwrap();
    assert_eq!(recs.len(), 1, "{body}");
    assert_eq!(recs[0]["title"], "Call the vet");
    assert_eq!(
        scalar(&db, farm, "SELECT count(*) FROM ai_recommendations").await?,
        1
    );
    assert_eq!(
        scalar(
            &db,
            farm,
            "SELECT count(*) FROM ai_recommendations WHERE body LIKE '%chloramphenicol%'"
        )
        .await?,
        0,
        "nothing of the unsafe one written"
    );
    assert_eq!(body["refused"].as_array().unwrap().len(), 1, "{body}");
    let failed = failed_clinical(&db, farm).await?;
    assert_eq!(failed.len(), 1, "{failed:?}");
    let (subject, rules, details) = &failed[0];
    assert_eq!(subject, "create_recommendation");
    assert!(
        rules.contains(&"prohibited_substance".to_string()),
        "{rules:?}"
    );
    let banned = details["violations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["rule"] == "prohibited_substance")
        .unwrap();
    assert_eq!(
        banned["prohibited_where"],
        json!([
            "US 21 CFR 530.41",
            "EU 37/2010 Table 2",
            "NG NAFDAC banned list"
        ]),
        "the evidence names where it is prohibited"
    );
    Ok(())
}

#[tokio::test]
async fn an_unsafe_auto_record_is_refused_and_a_safe_one_is_written() -> Result<()> {
    let db = TestDb::new().await?;
    let (farm, owner) = farm(&db, "clinical-auto", 10_000).await?;
    set_autonomy(&db, farm, Tier::Auto, &[RecordType::Symptom]).await?;
    let safe = "Coughing and sneezing in house B since Monday.";
    let (body, results) = two_writes(
        &db,
        farm,
        &owner,
        "record_symptom",
        json!({"symptoms": "Coughing; give tylosin in the water for 5 days, no vet needed.", "affected_count": 4}),
        json!({"symptoms": safe, "affected_count": 4}),
    )
    .await?;
    assert_refused(&results[0], "antimicrobial_without_vet");
    assert_eq!(
        results[1]["content"][0]["json"]["status"], "record_written",
        "{}",
        results[1]
    );

    let records = body["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{body}");
    assert_eq!(records[0]["record_type"], "symptom");
    assert_eq!(records[0]["record"]["source"], "ai_auto");
    assert_eq!(body["drafts"], json!([]));
    let tx = db.app.tenant(farm).await?;
    let stored: Vec<(String, String)> = tx
        .query("SELECT symptoms, source FROM symptom_reports", &[])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    drop(tx);
    assert_eq!(stored, [(safe.to_string(), "ai_auto".to_string())]);
    assert_eq!(
        scalar(&db, farm, "SELECT count(*) FROM assistant_drafts").await?,
        0
    );
    let failed = failed_clinical(&db, farm).await?;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "record_symptom");
    assert!(
        failed[0]
            .1
            .contains(&"antimicrobial_without_vet".to_string()),
        "{:?}",
        failed[0].1
    );
    assert_eq!(failed[0].2["violations"][0]["field"], "symptoms");
    Ok(())
}

#[tokio::test]
async fn an_unsafe_draft_is_refused_and_a_safe_one_is_drafted() -> Result<()> {
    let db = TestDb::new().await?;
    let (farm, owner) = farm(&db, "clinical-draft", 10_000).await?;
    set_autonomy(&db, farm, Tier::Draft, &[]).await?;
    let (body, results) = two_writes(
        &db,
        farm,
        &owner,
        "record_task",
        json!({"title": "Spray Sniper on the layers for mites"}),
        json!({"title": "Call the vet about the coughing layers"}),
    )
    .await?;
    assert_refused(&results[0], "pesticide_on_animals");
    assert_eq!(
        results[1]["content"][0]["json"]["status"], "draft_created",
        "{}",
        results[1]
    );

    let drafts = body["drafts"].as_array().unwrap();
    assert_eq!(drafts.len(), 1, "{body}");
    assert_eq!(drafts[0]["record_type"], "task");
    assert_eq!(
        drafts[0]["payload"]["title"],
        "Call the vet about the coughing layers"
    );
    assert_eq!(body["records"], json!([]));
    assert_eq!(
        scalar(&db, farm, "SELECT count(*) FROM assistant_drafts").await?,
        1
    );
    assert_eq!(
        scalar(
            &db,
            farm,
            "SELECT count(*) FROM assistant_drafts WHERE payload::text LIKE '%Sniper%'"
        )
        .await?,
        0,
        "nothing of the unsafe one written"
    );
    assert_eq!(scalar(&db, farm, "SELECT count(*) FROM tasks").await?, 0);
    let failed = failed_clinical(&db, farm).await?;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "record_task");
    assert_eq!(failed[0].1, ["pesticide_on_animals"]);
    Ok(())
}
