//! The Bedrock path: the real aws-sdk-bedrockruntime client against a local Converse stub.

use std::time::{Duration, Instant};

use anyhow::Result;
use farmops::{
    chat::{ChatLimits, evals::SAFE_REPLY},
    credits::{self, price_for},
    testing::TestDb,
};
use serde_json::{Value, json};

use crate::support::*;

const TIMEOUT: Duration = Duration::from_secs(2);

#[tokio::test]
async fn tool_use_round_trip_creates_a_draft() -> Result<()> {
    let db = TestDb::new().await?;
    let (farm, owner) = farm(&db, "stub-roundtrip", 10_000).await?;
    let stub = ConverseStub::start(vec![
        Scripted::tool_use(&[(
            "tu-1",
            "record_sale",
            json!({"item": "eggs", "quantity": 20, "unit": "crate", "amount_kobo": 4_500_000}),
        )]),
        Scripted::text("I saved the sale as a draft for you to confirm."),
    ])
    .await?;
    let state = state_with(&db, stub.model(TIMEOUT).await);
    let (status, body) = chat(
        &state,
        farm,
        &owner,
        json!({"message": "sold 20 crates of eggs for 45,000 naira"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["reply"],
        "I saved the sale as a draft for you to confirm."
    );
    assert_eq!(body["drafts"].as_array().unwrap().len(), 1);
    assert_eq!(body["drafts"][0]["record_type"], "sale");
    assert_eq!(body["drafts"][0]["payload"]["amount_kobo"], 4_500_000);
    assert_eq!(body["drafts"][0]["farm_id"], farm.to_string());
    assert_eq!(body["records"], json!([]));

    // The wire: two Converse calls, tools and caps sent, the tool result sent back.
    let requests = stub.requests();
    assert_eq!(requests.len(), 2);
    let (path, first) = &requests[0];
    assert_eq!(
        path,
        "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse"
    );
    let limits = ChatLimits::default();
    assert_eq!(
        first["inferenceConfig"]["maxTokens"],
        limits.max_output_tokens
    );
    let tools = first["toolConfig"]["tools"].as_array().unwrap();
    assert!(tools.iter().any(|t| {
        t["toolSpec"]["name"] == "record_sale"
            && t["toolSpec"]["inputSchema"]["json"]["required"]
                .as_array()
                .unwrap()
                .contains(&json!("amount_kobo"))
    }));
    let second = &requests[1].1;
    let last = second["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["role"], "user");
    assert_eq!(last["content"][0]["toolResult"]["toolUseId"], "tu-1");
    assert_eq!(last["content"][0]["toolResult"]["status"], "success");

    // Metering: charged the real usage (2 calls x 1200 in / 80 out), refunded the rest.
    let price = price_for(HAIKU).unwrap();
    let charged = credits::cost(price, 2400, 160);
    assert_eq!(body["credits"]["charged"], charged);
    let reserved = body["credits"]["reserved"].as_i64().unwrap();
    assert_eq!(body["credits"]["refunded"], reserved - charged);
    assert_eq!(body["credits"]["balance"], 10_000 - charged);
    assert_eq!(balance(&db, farm).await?, 10_000 - charged);
    let (status, _, db_charged) = run_row(&db, farm, body["run_id"].as_str().unwrap()).await?;
    assert_eq!((status.as_str(), db_charged), ("succeeded", charged));
    assert_eq!(
        scalar(
            &db,
            farm,
            "SELECT count(*) FROM assistant_drafts WHERE status = 'pending'"
        )
        .await?,
        1
    );
    assert_eq!(scalar(&db, farm, "SELECT count(*) FROM messages").await?, 2);
    assert_eq!(
        scalar(&db, farm, "SELECT count(*) FROM ai_evals WHERE passed").await?,
        2,
        "schema + clinical"
    );
    assert!(ledger_holds(&db, farm).await?);
    Ok(())
}

async fn failed_turn(script: Vec<Scripted>, expected_status: u16, code: &str) -> Result<()> {
    let db = TestDb::new().await?;
    let (farm, owner) = farm(&db, "stub-fail", 10_000).await?;
    let stub = ConverseStub::start(script).await?;
    let state = state_with(&db, stub.model(TIMEOUT).await);
    let started = Instant::now();
    let (status, body) = chat(
        &state,
        farm,
        &owner,
        json!({"message": "used 4 bags of feed"}),
    )
    .await;
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["error"]["code"], code);
    assert!(started.elapsed() < TIMEOUT * 3, "cut off, not waited out");
    assert_eq!(balance(&db, farm).await?, 10_000, "fully refunded");
    assert_eq!(
        scalar(
            &db,
            farm,
            "SELECT count(*) FROM ai_runs WHERE status = 'failed' AND credits_charged = 0"
        )
        .await?,
        1
    );
    assert_eq!(written(&db, farm).await?, 0, "nothing of the turn survives");
    assert!(ledger_holds(&db, farm).await?);
    assert!(!stub.requests().is_empty(), "the model was called");
    Ok(())
}

#[tokio::test]
async fn throttling_answers_503_and_refunds() -> Result<()> {
    failed_turn(
        vec![Scripted::error(429, "ThrottlingException")],
        503,
        "model_unavailable",
    )
    .await
}

#[tokio::test]
async fn a_server_error_answers_502_and_refunds() -> Result<()> {
    failed_turn(
        vec![Scripted::error(500, "InternalServerException")],
        502,
        "model_failed",
    )
    .await
}

#[tokio::test]
async fn service_unavailable_answers_503_and_refunds() -> Result<()> {
    failed_turn(
        vec![Scripted::error(503, "ServiceUnavailableException")],
        503,
        "model_unavailable",
    )
    .await
}

#[tokio::test]
async fn unreadable_model_output_answers_502_and_refunds() -> Result<()> {
    let mut garbage = Scripted::text("x");
    garbage.body = json!({"output": {"message": {"role": "assistant", "content": "not a list"}}, "stopReason": 7});
    failed_turn(vec![garbage], 502, "model_failed").await
}

#[tokio::test]
async fn a_model_slower_than_the_timeout_is_cut_off_and_refunded() -> Result<()> {
    let mut slow = Scripted::text("too late");
    slow.delay = TIMEOUT * 5;
    failed_turn(vec![slow], 503, "model_unavailable").await
}

#[tokio::test]
async fn a_failure_after_a_tool_call_charges_only_the_first_call_and_writes_nothing() -> Result<()>
{
    let db = TestDb::new().await?;
    let (farm, owner) = farm(&db, "stub-midway", 10_000).await?;
    let stub = ConverseStub::start(vec![
        Scripted::tool_use(&[("tu-1", "record_note", json!({"body": "fence mended"}))]),
        Scripted::error(500, "InternalServerException"),
    ])
    .await?;
    let state = state_with(&db, stub.model(TIMEOUT).await);
    let (status, body) = chat(
        &state,
        farm,
        &owner,
        json!({"message": "note: fence mended"}),
    )
    .await;
    assert_eq!(status, 502, "{body}");
    let charged = credits::cost(price_for(HAIKU).unwrap(), 1200, 80);
    assert_eq!(balance(&db, farm).await?, 10_000 - charged);
    assert_eq!(
        scalar(
            &db,
            farm,
            "SELECT count(*) FROM ai_runs WHERE status = 'failed'"
        )
        .await?,
        1
    );
    assert_eq!(
        scalar(
            &db,
            farm,
            "SELECT sum(credits_charged)::bigint FROM ai_runs"
        )
        .await?,
        charged
    );
    assert_eq!(
        written(&db, farm).await?,
        0,
        "the planned draft did not survive"
    );
    assert!(ledger_holds(&db, farm).await?);
    Ok(())
}

#[tokio::test]
async fn invalid_tool_input_is_refused_recorded_as_a_failed_eval_and_writes_nothing() -> Result<()>
{
    let db = TestDb::new().await?;
    let (farm, owner) = farm(&db, "stub-invalid", 10_000).await?;
    let stub = ConverseStub::start(vec![
        Scripted::tool_use(&[(
            "tu-1",
            "record_mortality",
            json!({"count": "three", "location": "pen 2"}),
        )]),
        Scripted::text("I could not record that: how many birds died?"),
    ])
    .await?;
    let state = state_with(&db, stub.model(TIMEOUT).await);
    let (status, body) = chat(
        &state,
        farm,
        &owner,
        json!({"message": "three birds died in pen 2"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["refused"].as_array().unwrap().len(), 1);
    let schema: Vec<_> = body["evals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == "schema_conformance")
        .collect();
    assert_eq!(schema.len(), 1);
    assert_eq!(schema[0]["passed"], false);
    assert_eq!(schema[0]["details"]["errors"][0]["field"], "count");
    // The model got the refusal as a tool error.
    let second = &stub.requests()[1].1;
    let result =
        &second["messages"].as_array().unwrap().last().unwrap()["content"][0]["toolResult"];
    assert_eq!(result["status"], "error");
    assert_eq!(
        scalar(&db, farm, "SELECT count(*) FROM assistant_drafts").await?,
        0
    );
    assert_eq!(
        scalar(&db, farm, "SELECT count(*) FROM mortality_events").await?,
        0
    );
    assert_eq!(
        scalar(
            &db,
            farm,
            "SELECT count(*) FROM ai_evals WHERE name = 'schema_conformance' AND NOT passed"
        )
        .await?,
        1
    );
    Ok(())
}

#[tokio::test]
async fn an_unsafe_clinical_reply_is_withheld_flagged_and_stored_as_a_failed_eval() -> Result<()> {
    let db = TestDb::new().await?;
    let (farm, owner) = farm(&db, "stub-clinical", 10_000).await?;
    let unsafe_reply =
        "Give 2 g of oxytetracycline per litre for 5 days and sell the eggs immediately.";
    let stub = ConverseStub::start(vec![Scripted::text(unsafe_reply)]).await?;
    let state = state_with(&db, stub.model(TIMEOUT).await);
    let (status, body) = chat(
        &state,
        farm,
        &owner,
        json!({"message": "my birds are coughing, what drug should I give?"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reply"], SAFE_REPLY);
    assert_eq!(body["reply_withheld"], true);
    let clinical = body["evals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "clinical_safety")
        .unwrap()
        .clone();
    assert_eq!(clinical["passed"], false);
    let fired: Vec<&Value> = clinical["details"]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["rule"])
        .collect();
    assert!(
        fired.contains(&&json!("antimicrobial_without_vet")),
        "{fired:?}"
    );
    assert!(fired.contains(&&json!("withdrawal_ignored")), "{fired:?}");
    assert_eq!(
        scalar(
            &db,
            farm,
            "SELECT count(*) FROM ai_evals WHERE name = 'clinical_safety' AND NOT passed"
        )
        .await?,
        1
    );
    assert_eq!(
        scalar(
            &db,
            farm,
            "SELECT count(*) FROM messages WHERE content LIKE '%oxytetracycline%'"
        )
        .await?,
        0,
        "the unsafe text never enters the conversation"
    );
    Ok(())
}

#[tokio::test]
async fn tool_arguments_naming_another_farm_write_nothing_outside_the_callers_farm() -> Result<()> {
    let db = TestDb::new().await?;
    let (farm, owner) = farm(&db, "stub-mine", 10_000).await?;
    let (other, _) = crate::support::farm(&db, "stub-other", 10_000).await?;
    let stub = ConverseStub::start(vec![
        Scripted::tool_use(&[
            (
                "tu-1",
                "record_note",
                json!({"body": "moved birds", "farm_id": other.to_string()}),
            ),
            (
                "tu-2",
                "recent_records",
                json!({"farm_id": other.to_string()}),
            ),
            ("tu-3", "record_task", json!({"title": "check fence"})),
        ]),
        Scripted::text("Done."),
    ])
    .await?;
    let state = state_with(&db, stub.model(TIMEOUT).await);
    let (status, body) = chat(
        &state,
        farm,
        &owner,
        json!({"message": "note for the other farm"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["refused"].as_array().unwrap().len(), 2, "{body}");
    assert_eq!(body["drafts"].as_array().unwrap().len(), 1);
    assert_eq!(body["drafts"][0]["farm_id"], farm.to_string());
    assert_eq!(written(&db, other).await?, 0, "nothing in the other farm");
    assert_eq!(balance(&db, other).await?, 10_000);
    assert_eq!(
        scalar(
            &db,
            farm,
            "SELECT count(*) FROM assistant_drafts WHERE record_type = 'task'"
        )
        .await?,
        1
    );
    assert_eq!(
        scalar(
            &db,
            farm,
            "SELECT count(*) FROM assistant_drafts WHERE record_type = 'note'"
        )
        .await?,
        0
    );
    Ok(())
}

#[tokio::test]
async fn the_last_turns_are_sent_as_history() -> Result<()> {
    let db = TestDb::new().await?;
    let (farm, owner) = farm(&db, "stub-history", 10_000).await?;
    let stub = ConverseStub::start(vec![
        Scripted::text("Layers need about 16 hours of light."),
        Scripted::text("Yes, from week 18."),
    ])
    .await?;
    let state = state_with(&db, stub.model(TIMEOUT).await);
    let (_, first) = chat(
        &state,
        farm,
        &owner,
        json!({"message": "How much light do layers need?"}),
    )
    .await;
    let conversation = first["conversation_id"].clone();
    let (status, second) = chat(
        &state,
        farm,
        &owner,
        json!({"message": "Even young ones?", "conversation_id": conversation}),
    )
    .await;
    assert_eq!(status, 200, "{second}");
    let sent = &stub.requests()[1].1["messages"];
    let texts: Vec<&str> = sent
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"][0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        [
            "How much light do layers need?",
            "Layers need about 16 hours of light.",
            "Even young ones?"
        ]
    );
    assert_eq!(sent[0]["role"], "user");
    assert_eq!(sent[1]["role"], "assistant");
    Ok(())
}

#[tokio::test]
async fn the_tool_loop_stops_at_its_call_limit_within_the_reservation() -> Result<()> {
    let db = TestDb::new().await?;
    let (farm, owner) = farm(&db, "stub-loop", 10_000).await?;
    let limits = ChatLimits::default();
    let script: Vec<Scripted> = (0..limits.max_model_calls + 2)
        .map(|i| {
            Scripted::tool_use(&[(
                &format!("tu-{i}"),
                "record_note",
                json!({"body": format!("note {i}")}),
            )])
        })
        .collect();
    let stub = ConverseStub::start(script).await?;
    let state = state_with(&db, stub.model(TIMEOUT).await);
    let (status, body) = chat(&state, farm, &owner, json!({"message": "keep noting"})).await;
    assert_eq!(status, 200, "{body}");
    let calls = limits.max_model_calls as usize;
    assert_eq!(stub.requests().len(), calls, "no call beyond the cap");
    assert_eq!(body["usage"]["model_calls"], calls);
    assert_eq!(
        body["drafts"].as_array().unwrap().len(),
        calls - 1,
        "the last call's tool use is not executed"
    );
    assert!(
        body["reply"].as_str().unwrap().contains("tool-call limit"),
        "{body}"
    );
    let reserved = body["credits"]["reserved"].as_i64().unwrap();
    let charged = body["credits"]["charged"].as_i64().unwrap();
    assert_eq!(
        charged,
        credits::cost(
            price_for(HAIKU).unwrap(),
            1200 * calls as u64,
            80 * calls as u64
        )
    );
    assert!(charged <= reserved);
    assert!(ledger_holds(&db, farm).await?);
    Ok(())
}

#[tokio::test]
async fn read_tools_see_only_the_callers_farm() -> Result<()> {
    use farmops::records::{Provenance, RecordType, Source, insert_record, validate_payload};
    let db = TestDb::new().await?;
    let (farm, owner) = farm(&db, "stub-read", 10_000).await?;
    let (other, _) = crate::support::farm(&db, "stub-read-other", 10_000).await?;
    for (f, body) in [
        (farm, "our fence is mended"),
        (other, "secret of the other farm"),
    ] {
        let tx = db.app.tenant(f).await?;
        let payload = validate_payload(
            RecordType::Note,
            &json!({"body": body, "occurred_on": "2026-01-05"}),
            chrono::Utc::now().date_naive(),
        )?;
        insert_record(
            &tx,
            &payload,
            &Provenance {
                source: Source::Manual,
                created_by: "seed",
                ai_run_id: None,
                draft_id: None,
                confirmed_by: None,
            },
        )
        .await?;
        tx.commit().await?;
    }
    let stub = ConverseStub::start(vec![
        Scripted::tool_use(&[
            ("tu-1", "recent_records", json!({})),
            ("tu-2", "farm_summary", json!({})),
        ]),
        Scripted::text("You mended the fence."),
    ])
    .await?;
    let state = state_with(&db, stub.model(TIMEOUT).await);
    let before = state.db.round_trips();
    let (status, body) = chat(
        &state,
        farm,
        &owner,
        json!({"message": "what happened lately?"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(state.db.round_trips() - before, 6, "4 + one per read tool");
    let results = stub.requests()[1].1["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()["content"]
        .clone();
    let recent = results[0]["toolResult"]["content"][0]["json"].to_string();
    assert!(recent.contains("our fence is mended"), "{recent}");
    assert!(!recent.contains("secret"), "{recent}");
    let summary = &results[1]["toolResult"]["content"][0]["json"];
    assert_eq!(
        summary["records_last_30_days"]["note"], 0,
        "occurred long ago: {summary}"
    );
    assert!(
        summary["credit_balance"].as_i64().unwrap() < 10_000,
        "{summary}"
    );
    Ok(())
}
