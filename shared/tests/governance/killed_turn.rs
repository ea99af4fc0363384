//! A chat turn killed between two model calls (its Lambda timed out, the task was dropped;
//! issue 20): the run never settles, so reconcile returns its holds exactly once, it left no
//! draft (a turn writes its drafts only with its settlement), and the evidence shows it
//! expired with its expire leg matching what it held.

use std::{
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use async_trait::async_trait;
use chrono::Utc;
use farmops::{
    chat::{self, ChatDeps, ChatLimits, TurnRequest},
    evidence::{self, EvidenceQuery},
    model::{ChatModel, ChatRequest, ChatResponse, offline::OfflineChat},
    rag::NoRetrieval,
    reconcile,
    testing::TestDb,
};
use tokio::sync::Notify;

/// The offline model, except that its second call never answers (and says when it started).
struct StallsOnSecondCall {
    calls: AtomicU32,
    second: Notify,
}

#[async_trait]
impl ChatModel for StallsOnSecondCall {
    fn model_id(&self) -> &str {
        OfflineChat.model_id()
    }
    fn input_token_bound(&self, request: &ChatRequest) -> u64 {
        OfflineChat.input_token_bound(request)
    }
    async fn converse(&self, request: &ChatRequest) -> farmops::Result<ChatResponse> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            return OfflineChat.converse(request).await;
        }
        self.second.notify_one();
        std::future::pending().await
    }
}

async fn scalar(db: &TestDb, sql: &str, farm: uuid::Uuid) -> i64 {
    let owner = db.owner_client().await.unwrap();
    owner.query_one(sql, &[&farm]).await.unwrap().get(0)
}

#[tokio::test]
async fn a_turn_dropped_between_model_calls_is_expired_once_with_no_drafts() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("Green Acres", 1_000).await.unwrap();
    db.member(farm, "owner", "owner").await.unwrap();
    let model = StallsOnSecondCall {
        calls: AtomicU32::new(0),
        second: Notify::new(),
    };
    let limits = ChatLimits::default();
    let deps = ChatDeps {
        db: &db.app,
        model: &model,
        retriever: &NoRetrieval,
        limits: &limits,
    };
    let request = TurnRequest {
        message: "3 birds died in pen 2 and we sold 20 crates of eggs for 45,000 naira".into(),
        conversation_id: None,
    };
    // the turn runs until its second model call has started, then its task is dropped
    let turn = chat::run_turn(&deps, farm, "owner", &request);
    tokio::select! {
        result = turn => panic!("the turn finished: {result:?}"),
        () = model.second.notified() => {}
        () = tokio::time::sleep(Duration::from_secs(30)) => panic!("no second model call"),
    }
    assert_eq!(model.calls.load(Ordering::SeqCst), 2);

    let held = scalar(
        &db,
        "SELECT sum(credits_reserved)::bigint FROM ai_runs WHERE farm_id = $1 AND status = 'reserved'",
        farm,
    )
    .await;
    assert!(held > 0, "the dropped turn holds credits");
    let holds = scalar(
        &db,
        "SELECT count(*) FROM credit_ledger WHERE farm_id = $1 AND entry_type = 'reserve'",
        farm,
    )
    .await;
    assert!(holds >= 1);
    let drafts = "SELECT count(*) FROM assistant_drafts WHERE farm_id = $1";
    assert_eq!(
        scalar(&db, drafts, farm).await,
        0,
        "nothing written mid-turn"
    );
    assert_eq!(
        scalar(&db, "SELECT credit_balance FROM farms WHERE id = $1", farm).await,
        1_000 - held
    );

    // reconcile (past the longest run) returns the holds once; a second pass finds nothing
    let cutoff = Utc::now() + chrono::Duration::minutes(1);
    let first = reconcile::run_at(&db.app, cutoff).await.unwrap();
    assert_eq!((first.runs_expired, first.credits_refunded), (1, held));
    let second = reconcile::run_at(&db.app, cutoff).await.unwrap();
    assert_eq!((second.runs_expired, second.credits_refunded), (0, 0));
    assert_eq!(
        scalar(&db, "SELECT credit_balance FROM farms WHERE id = $1", farm).await,
        1_000
    );
    let closes = "SELECT count(*) FROM credit_ledger WHERE farm_id = $1 AND entry_type IN ('settle', 'expire')";
    assert_eq!(scalar(&db, closes, farm).await, 1, "closed exactly once");
    assert_eq!(
        scalar(&db, drafts, farm).await,
        0,
        "still no drafts: the run expired"
    );

    // the evidence shows it expired, its legs matched: held, nothing charged, all expired
    let tx = db.app.tenant(farm).await.unwrap();
    let page = evidence::evidence_page(
        &tx,
        &EvidenceQuery {
            limit: 10,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let [run] = page.runs.as_slice() else {
        panic!("one run: {:?}", page.runs);
    };
    assert_eq!(run.status, farmops::status::RunStatus::Expired);
    assert_eq!(
        (
            run.matched.reserved,
            run.matched.charged,
            run.matched.expired,
            run.matched.holds
        ),
        (held, 0, held, holds)
    );
    assert!(run.drafts.is_empty());
    assert!(page.ledger.holds, "{:?}", page.ledger);
}
