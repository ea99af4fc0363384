//! A member removed (or demoted to viewer) while their turn's model call is in progress keeps
//! nothing they did not already have: the turn's save re-checks the membership under a lock,
//! writes nothing of the turn but the run's settlement (charged what the model calls used,
//! the rest refunded), and answers like the start of a turn would (404, 403). A removal that
//! comes while the save holds that lock waits for the save to commit.

use std::{sync::Arc, time::Duration};

use anyhow::Result;
use async_trait::async_trait;
use farmops::{
    db::{Db, Type},
    model::{ChatModel, ChatRequest, ChatResponse, offline::OfflineChat},
    testing::TestDb,
};
use serde_json::json;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::support::*;

const MESSAGE: &str = "3 birds died in pen 2 and we sold 20 crates of eggs for 45,000 naira";

/// The offline model whose first call, before answering, has the farm's owner run `sql`
/// (`remove_member` or `set_member_role`) through another connection and commit: the change
/// lands while the turn's model call is in progress.
struct ChangesMembershipMidCall {
    inner: OfflineChat,
    db: Db,
    farm: Uuid,
    sql: Mutex<Option<String>>,
}

#[async_trait]
impl ChatModel for ChangesMembershipMidCall {
    fn model_id(&self) -> &str {
        self.inner.model_id()
    }
    fn input_token_bound(&self, request: &ChatRequest) -> u64 {
        self.inner.input_token_bound(request)
    }
    async fn converse(&self, request: &ChatRequest) -> farmops::Result<ChatResponse> {
        if let Some(sql) = self.sql.lock().await.take() {
            let tx = self.db.tenant(self.farm).await?;
            tx.query(&sql, &[]).await?;
            tx.commit().await?;
        }
        self.inner.converse(request).await
    }
}

async fn turn_while(db: &TestDb, name: &str, sql: &str) -> Result<(Uuid, u16, serde_json::Value)> {
    let (farm, _owner) = farm(db, name, 10_000).await?;
    db.member(farm, "worker", "worker").await?;
    let model = ChangesMembershipMidCall {
        inner: OfflineChat,
        db: db.app.clone(),
        farm,
        sql: Mutex::new(Some(sql.replace("OWNER", &format!("owner-{name}")))),
    };
    let state = state_with(db, Arc::new(model));
    let (status, body) = chat(&state, farm, "worker", json!({"message": MESSAGE})).await;
    Ok((farm, status, body))
}

/// Nothing of the turn but its run, settled as failed: charged what its calls used, the rest
/// refunded, the ledger whole.
async fn only_the_run_settled(db: &TestDb, farm: Uuid) -> Result<()> {
    assert_eq!(written(db, farm).await?, 0, "no draft, record or message");
    assert_eq!(scalar(db, farm, "SELECT count(*) FROM ai_evals").await?, 0);
    assert_eq!(
        scalar(
            db,
            farm,
            "SELECT count(*) FROM ai_runs WHERE status = 'failed'"
        )
        .await?,
        1
    );
    let charged = scalar(db, farm, "SELECT sum(credits_charged)::bigint FROM ai_runs").await?;
    assert!(charged > 0, "the model call was paid for");
    assert_eq!(
        balance(db, farm).await?,
        10_000 - charged,
        "the rest refunded"
    );
    assert!(ledger_holds(db, farm).await?);
    Ok(())
}

#[tokio::test]
async fn a_member_removed_during_the_model_call_keeps_nothing_of_the_turn() -> Result<()> {
    let db = TestDb::new().await?;
    let (farm, status, body) =
        turn_while(&db, "removed", "SELECT remove_member('OWNER', 'worker')").await?;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    only_the_run_settled(&db, farm).await
}

#[tokio::test]
async fn a_member_demoted_to_viewer_during_the_model_call_keeps_nothing_of_the_turn() -> Result<()>
{
    let db = TestDb::new().await?;
    let (farm, status, body) = turn_while(
        &db,
        "demoted",
        "SELECT set_member_role('OWNER', 'worker', 'viewer')",
    )
    .await?;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    only_the_run_settled(&db, farm).await
}

/// The lock the save takes is one the removal door waits for: a removal that starts after the
/// save read the membership commits only after the save did.
#[tokio::test]
async fn a_removal_waits_for_a_save_that_holds_the_membership_lock() -> Result<()> {
    let db = TestDb::new().await?;
    let (farm, owner) = farm(&db, "lock", 0).await?;
    db.member(farm, "worker", "worker").await?;
    let save = db.app.tenant(farm).await?;
    let role = farmops::membership::lock_member_role(&save, "worker").await?;
    assert_eq!(role, Some(farmops::membership::Role::Worker));
    let removal = {
        let app = db.app_pool(2)?;
        tokio::spawn(async move {
            let tx = app.tenant(farm).await?;
            tx.query(
                "SELECT remove_member($1, 'worker')",
                &[(&owner, Type::TEXT)],
            )
            .await?;
            tx.commit().await
        })
    };
    // the removal is blocked on a row lock (not on a pool or anything else)
    let owner_session = db.owner_client().await?;
    let mut waiting = 0;
    for _ in 0..100 {
        waiting = owner_session
            .query_one(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                  WHERE NOT l.granted AND a.datname = current_database()",
                &[],
            )
            .await?
            .get::<_, i64>(0);
        if waiting > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(waiting, 1, "the removal waits on the save's lock");
    assert!(!removal.is_finished(), "the removal waits for the save");
    save.commit().await?;
    tokio::time::timeout(Duration::from_secs(10), removal).await???;
    let tx = db.app.tenant(farm).await?;
    assert_eq!(
        farmops::membership::lock_member_role(&tx, "worker").await?,
        None
    );
    Ok(())
}

/// Removed before the turn: the turn's start answers 404 and holds nothing; demoted to viewer:
/// 403.
#[tokio::test]
async fn a_removed_members_next_turn_finds_no_farm() -> Result<()> {
    let db = TestDb::new().await?;
    let (farm, owner) = farm(&db, "gone", 1_000).await?;
    db.member(farm, "worker", "worker").await?;
    db.member(farm, "other", "worker").await?;
    let state = offline_state(&db);
    let (status, body) = chat(&state, farm, "worker", json!({"message": "hello"})).await;
    assert_eq!(status, 200, "{body}");
    let (spent, written_before) = (1_000 - balance(&db, farm).await?, written(&db, farm).await?);
    let tx = db.app.tenant(farm).await?;
    tx.query(
        "SELECT remove_member($1, 'worker'), set_member_role($1, 'other', 'viewer')",
        &[(&owner, Type::TEXT)],
    )
    .await?;
    tx.commit().await?;
    for (user, want, code) in [("worker", 404, "not_found"), ("other", 403, "forbidden")] {
        let (status, body) = chat(&state, farm, user, json!({"message": MESSAGE})).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (want, Some(code)),
            "{user}: {body}"
        );
    }
    assert_eq!(written(&db, farm).await?, written_before);
    assert_eq!(
        balance(&db, farm).await?,
        1_000 - spent,
        "nothing held or charged"
    );
    assert_eq!(scalar(&db, farm, "SELECT count(*) FROM ai_runs").await?, 1);
    Ok(())
}
