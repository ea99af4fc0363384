//! 24 concurrent turns, each on its own connection, on a farm holding 20 credits.

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
    fn input_token_bound(&self, request: &ChatRequest) -> u64 {
        self.inner.input_token_bound(request)
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
async fn twenty_four_concurrent_turns_on_twenty_credits() -> Result<()> {
    let db = TestDb::new().await?;
    let (farm, owner) = farm(&db, "crowd", 20).await?;
    let entered = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(0));
    let model = Gated {
        inner: OfflineChat,
        entered: Arc::clone(&entered),
        gate: Arc::clone(&gate),
    };
    let mut state = state_with(&db, Arc::new(model));
    state.db = db.app_pool(24)?;
    let state = Arc::new(state);
    let turns: Vec<_> = (0..24)
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
    // Every turn is either refused or holding for its first call before any settles.
    let started = Instant::now();
    loop {
        let answered = turns.iter().filter(|t| t.is_finished()).count();
        if answered + entered.load(Ordering::SeqCst) == 24 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "requests stuck"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let in_model = entered.load(Ordering::SeqCst);
    let peak_held = 20 - balance(&db, farm).await?;
    gate.close();
    let mut answers = Vec::new();
    for t in turns {
        answers.push(t.await?);
    }
    let ok: Vec<_> = answers.iter().filter(|(s, _)| *s == 200).collect();
    let refused: Vec<_> = answers.iter().filter(|(s, _)| *s == 402).collect();
    assert_eq!(ok.len() + refused.len(), 24, "{answers:?}");
    assert_eq!(ok.len(), in_model, "every turn that held ran");
    // Today's fixed worst case (145 credits a turn) let none of them run.
    assert!(
        ok.len() >= 3,
        "{} turns ran on 20 credits: {refused:?}",
        ok.len()
    );
    assert!(peak_held <= 20);
    for (_, body) in &refused {
        let e = &body["error"];
        assert_eq!(e["code"], "insufficient_credits");
        assert!(
            e["needed"].as_i64().unwrap() > e["balance"].as_i64().unwrap(),
            "{e}"
        );
    }
    let mut charged = 0;
    for (_, body) in &ok {
        let c = &body["credits"];
        assert!(c["charged"].as_i64().unwrap() <= c["reserved"].as_i64().unwrap());
        assert_eq!(
            c["refunded"].as_i64().unwrap(),
            c["reserved"].as_i64().unwrap() - c["charged"].as_i64().unwrap()
        );
        charged += c["charged"].as_i64().unwrap();
    }
    assert_eq!(
        scalar(&db, farm, "SELECT count(*) FROM ai_runs").await?,
        ok.len() as i64
    );
    assert_eq!(
        scalar(
            &db,
            farm,
            "SELECT count(*) FROM ai_runs WHERE status = 'succeeded'"
        )
        .await?,
        ok.len() as i64
    );
    assert_eq!(
        balance(&db, farm).await?,
        20 - charged,
        "every run fully paid"
    );
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
