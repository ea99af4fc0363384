//! 20 concurrent turns on a balance that covers 5 worst cases.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Result;
use async_trait::async_trait;
use farmops::{
    chat::ChatLimits,
    credits,
    model::{ChatModel, ChatRequest, ChatResponse, offline::OfflineChat},
    testing::TestDb,
};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::support::*;

/// The offline model behind a gate the test opens only once every request has either
/// been answered (402) or reached the model: no turn can settle (and refund) before every
/// reservation was decided, so the outcome does not depend on timing.
struct Gated {
    inner: OfflineChat,
    entered: Arc<AtomicUsize>,
    gate: Arc<Semaphore>,
}

#[async_trait]
impl ChatModel for Gated {
    fn model_id(&self) -> &str {
        self.inner.model_id()
    }
    async fn converse(&self, request: &ChatRequest) -> farmops::Result<ChatResponse> {
        if request.messages.len() == 1 {
            self.entered.fetch_add(1, Ordering::SeqCst);
        }
        // A closed semaphore is an open gate.
        let _ = self.gate.acquire().await;
        self.inner.converse(request).await
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
    let entered = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(0));
    let model = Gated {
        inner: OfflineChat,
        entered: Arc::clone(&entered),
        gate: Arc::clone(&gate),
    };
    let mut state = state_with(&db, Arc::new(model));
    state.db = db.app_pool(20)?;
    let state = Arc::new(state);
    let turns: Vec<_> = (0..20)
        .map(|i| {
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
        })
        .collect();
    let started = Instant::now();
    loop {
        let answered = turns.iter().filter(|t| t.is_finished()).count();
        if answered + entered.load(Ordering::SeqCst) == 20 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "requests stuck"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let in_model = entered.load(Ordering::SeqCst);
    assert_eq!(in_model, 5, "exactly the reservations that fit");
    gate.close();
    let mut statuses = Vec::new();
    for t in turns {
        statuses.push(t.await?.0);
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 402).count();
    assert_eq!((ok, refused), (5, 15), "{statuses:?}");
    assert_eq!(scalar(&db, farm, "SELECT count(*) FROM ai_runs").await?, 5);
    assert_eq!(
        scalar(
            &db,
            farm,
            "SELECT count(*) FROM ai_runs WHERE status = 'succeeded'"
        )
        .await?,
        5
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
