//! Holds sized to each call: a turn fits the farm's balance, and a turn whose next call
//! cannot be paid ends with what it did.

use std::sync::Arc;

use anyhow::Result;
use async_trait::async_trait;
use farmops::{
    model::{ChatModel, ChatRequest, ChatResponse, Usage, offline::OfflineChat},
    testing::TestDb,
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
