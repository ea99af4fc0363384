//! Holds sized to each call: a turn fits the farm's balance, and a turn whose next call
//! cannot be paid ends with what it did.

use std::sync::Arc;

use anyhow::Result;
use async_trait::async_trait;
use farmops::{
    credits,
    model::{ChatModel, ChatRequest, ChatResponse, Usage, offline::OfflineChat},
    testing::{TestDb, converse::worst_case_usage},
};
use serde_json::{Value, json};

use crate::support::*;

const WALKTHROUGH: &str = "3 birds died in pen 2 and we sold 20 crates of eggs for 45,000 naira";

fn kinds(body: &Value) -> Vec<String> {
    let mut k: Vec<String> = body["drafts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["record_type"].as_str().unwrap().to_string())
        .collect();
    k.sort();
    k
}

#[tokio::test]
async fn the_walkthrough_turn_runs_on_three_times_what_it_is_charged() -> Result<()> {
    let db = TestDb::new().await?;
    let (rich, owner) = farm(&db, "rich", 10_000).await?;
    let state = offline_state(&db);
    let (status, body) = chat(&state, rich, &owner, json!({"message": WALKTHROUGH})).await;
    assert_eq!(status, 200, "{body}");
    let charged = body["credits"]["charged"].as_i64().unwrap();
    let held = body["credits"]["reserved"].as_i64().unwrap();
    assert_eq!(kinds(&body), ["mortality", "sale"]);
    // Today's fixed worst case held 145 for a charge of 2.
    assert!(held <= 8 * charged, "held {held} for a charge of {charged}");

    let (small, owner) = farm(&db, "small", 3 * charged).await?;
    let (status, body) = chat(&state, small, &owner, json!({"message": WALKTHROUGH})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(kinds(&body), ["mortality", "sale"], "{body}");
    assert!(
        !body["reply"].as_str().unwrap().contains("stopped"),
        "{body}"
    );
    assert_eq!(body["usage"]["model_calls"], 2);
    let c = &body["credits"];
    assert!(c["charged"].as_i64().unwrap() <= c["reserved"].as_i64().unwrap());
    assert_eq!(
        balance(&db, small).await?,
        3 * charged - c["charged"].as_i64().unwrap()
    );
    assert!(ledger_holds(&db, small).await?);
    Ok(())
}

/// The offline model, reporting every call at its bound: input = what the run held for,
/// output = `maxTokens`. Nothing of a hold is left over for the next call.
struct AtTheBound(OfflineChat);

#[async_trait]
impl ChatModel for AtTheBound {
    fn model_id(&self) -> &str {
        self.0.model_id()
    }
    fn input_token_bound(&self, request: &ChatRequest) -> u64 {
        self.0.input_token_bound(request)
    }
    async fn converse(&self, request: &ChatRequest) -> farmops::Result<ChatResponse> {
        let mut response = self.0.converse(request).await?;
        response.usage = Usage {
            input_tokens: self.0.input_token_bound(request),
            output_tokens: u64::from(request.max_tokens),
        };
        Ok(response)
    }
}

#[tokio::test]
async fn a_turn_whose_second_call_cannot_be_paid_keeps_the_first_calls_work() -> Result<()> {
    let db = TestDb::new().await?;
    let (farm, owner) = farm(&db, "tight", 5).await?;
    let state = state_with(&db, Arc::new(AtTheBound(OfflineChat)));
    let (status, body) = chat(&state, farm, &owner, json!({"message": WALKTHROUGH})).await;
    assert_eq!(status, 200, "{body}");
    // the first call's tool calls are kept as drafts; the turn says why it stopped
    assert_eq!(kinds(&body), ["mortality", "sale"], "{body}");
    assert_eq!(body["usage"]["model_calls"], 1, "{body}");
    assert!(
        body["reply"]
            .as_str()
            .unwrap()
            .contains("run out of credits"),
        "{body}"
    );
    let c = &body["credits"];
    let (held, charged) = (
        c["reserved"].as_i64().unwrap(),
        c["charged"].as_i64().unwrap(),
    );
    assert!(charged > 0 && charged <= held, "{c}");
    assert_eq!(c["refunded"].as_i64().unwrap(), held - charged);
    assert_eq!(balance(&db, farm).await?, 5 - charged);
    assert_eq!(
        scalar(
            &db,
            farm,
            "SELECT count(*) FROM ai_runs WHERE status = 'succeeded'"
        )
        .await?,
        1
    );
    assert!(ledger_holds(&db, farm).await?);
    Ok(())
}

/// A three-call tool turn through the real Bedrock client against the Converse stub.
fn three_call_script(worst: bool) -> Vec<Scripted> {
    let s = |x: Scripted| if worst { x.at_worst_usage() } else { x };
    vec![
        s(Scripted::tool_use(&[(
            "tu-1",
            "record_mortality",
            json!({"count": 3, "location": "pen 2", "cause": "unknown"}),
        )])),
        s(Scripted::tool_use(&[(
            "tu-2",
            "recent_records",
            json!({"record_type": "mortality"}),
        )])),
        s(Scripted::text(
            "Saved the deaths as a draft; pen 2 has had 3 this week.",
        )),
    ]
}

#[tokio::test]
async fn the_stubs_worst_case_usage_never_exceeds_what_was_held_for_each_call() -> Result<()> {
    let db = TestDb::new().await?;
    let (farm, owner) = farm(&db, "stub-bounds", 10_000).await?;
    let stub = ConverseStub::start(three_call_script(true)).await?;
    let state = state_with(&db, stub.model(std::time::Duration::from_secs(2)).await);
    let (status, body) = chat(
        &state,
        farm,
        &owner,
        json!({"message": "3 birds died in pen 2"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["usage"]["model_calls"], 3, "{body}");
    // Every call's reported usage (a tokeniser of one token per byte, the whole maxTokens)
    // stayed within the bound held for that call...
    assert_eq!(body["usage"]["calls_over_bound"], 0, "{body}");
    // ...so the charge is the exact price of what the stub reported, never capped.
    let requests = stub.requests();
    assert_eq!(requests.len(), 3);
    let (mut input, mut output) = (0, 0);
    for (_, request) in &requests {
        let usage = worst_case_usage(request);
        input += usage["inputTokens"].as_u64().unwrap();
        output += usage["outputTokens"].as_u64().unwrap();
    }
    assert_eq!(body["usage"]["input_tokens"], input);
    assert_eq!(body["usage"]["output_tokens"], output);
    let charged = credits::cost(credits::price_for(HAIKU).unwrap(), input, output);
    let c = &body["credits"];
    assert_eq!(c["charged"], charged, "{body}");
    let held = c["reserved"].as_i64().unwrap();
    assert!(charged <= held, "{c}");
    assert_eq!(c["refunded"].as_i64().unwrap(), held - charged);
    // held call by call: one hold leg per call at most, and never far above the charge
    let holds = body["usage"]["holds"].as_i64().unwrap();
    assert!((1..=3).contains(&holds), "{body}");
    assert_eq!(
        scalar(
            &db,
            farm,
            "SELECT count(*) FROM credit_ledger WHERE entry_type = 'reserve'"
        )
        .await?,
        holds
    );
    assert!(held <= 8 * charged, "held {held} for a charge of {charged}");
    assert!(ledger_holds(&db, farm).await?);
    Ok(())
}

#[tokio::test]
async fn a_provider_reporting_more_than_the_bound_is_seen_and_its_charge_capped() -> Result<()> {
    let db = TestDb::new().await?;
    let (farm, owner) = farm(&db, "stub-overreport", 10_000).await?;
    let mut over = Scripted::text("ok");
    over.body["usage"] =
        json!({"inputTokens": 900_000, "outputTokens": 90_000, "totalTokens": 990_000});
    let stub = ConverseStub::start(vec![over]).await?;
    let state = state_with(&db, stub.model(std::time::Duration::from_secs(2)).await);
    let (status, body) = chat(&state, farm, &owner, json!({"message": "hello"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["usage"]["calls_over_bound"], 1, "{body}");
    let c = &body["credits"];
    assert_eq!(c["charged"], c["reserved"], "capped at the hold: {c}");
    assert!(ledger_holds(&db, farm).await?);
    Ok(())
}
