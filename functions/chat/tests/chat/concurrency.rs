//! 20 concurrent turns on a balance that covers 5 worst cases.

use std::{sync::Arc, time::Duration};

use anyhow::Result;
use async_trait::async_trait;
use farmops::{
    chat::ChatLimits,
    credits,
    model::{ChatModel, ChatRequest, ChatResponse, offline::OfflineChat},
    testing::TestDb,
};
use serde_json::json;

use crate::support::*;

/// The offline model, slowed down so every reservation is decided while the first turns
/// are still running (a turn that settled early would refund and let a late one in).
struct Slow(OfflineChat);

#[async_trait]
impl ChatModel for Slow {
    fn model_id(&self) -> &str {
        self.0.model_id()
    }
    async fn converse(&self, request: &ChatRequest) -> farmops::Result<ChatResponse> {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        self.0.converse(request).await
    }
}

#[tokio::test]
async fn twenty_concurrent_turns_on_a_balance_for_five() -> Result<()> {
    let db = TestDb::new().await?;
    let limits = ChatLimits::default();
    let worst = credits::worst_case_cost(
        credits::price_for("offline-farm-assistant").unwrap(),
        limits.max_input_tokens,
        u64::from(limits.max_output_tokens),
        u64::from(limits.max_model_calls),
    );
    let (farm, owner) = farm(&db, "crowd", 5 * worst).await?;
    let mut state = state_with(&db, Arc::new(Slow(OfflineChat)));
    state.db = db.app_pool(20)?;
    let state = Arc::new(state);
    let turns = (0..20).map(|i| {
        let state = Arc::clone(&state);
        let owner = owner.clone();
        tokio::spawn(async move {
            chat(
                &state,
                farm,
                &owner,
                json!({"message": format!("used {} bags of feed", i + 1)}),
            )
            .await
        })
    });
    let results = futures::future::join_all(turns).await;
    let statuses: Vec<u16> = results.into_iter().map(|r| r.unwrap().0).collect();
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 402).count();
    assert_eq!(ok + refused, 20, "{statuses:?}");
    assert!((1..=5).contains(&ok), "{statuses:?}");
    assert_eq!(
        scalar(&db, farm, "SELECT count(*) FROM ai_runs").await?,
        ok as i64
    );
    assert_eq!(
        scalar(
            &db,
            farm,
            "SELECT count(*) FROM ai_runs WHERE status = 'succeeded'"
        )
        .await?,
        ok as i64
    );
    assert!(balance(&db, farm).await? >= 0);
    assert!(ledger_holds(&db, farm).await?);
    assert_eq!(
        scalar(
            &db,
            farm,
            "SELECT count(*) FROM credit_ledger WHERE balance_after < 0"
        )
        .await?,
        0
    );
    Ok(())
}
