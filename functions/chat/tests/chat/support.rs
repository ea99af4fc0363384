use std::sync::Arc;

use anyhow::Result;
use chat::State;
pub use farmops::testing::converse::{ConverseStub, HAIKU, Scripted};
use farmops::{
    chat::ChatLimits,
    db::Type,
    model::{ChatModel, offline::OfflineChat},
    rag::NoRetrieval,
    testing::TestDb,
};
use farmops_http::{
    IdentitySource,
    testing::{apigw_request, body_json},
};
use lambda_http::{Body, Response};
use serde_json::Value;
use uuid::Uuid;

pub fn state_with(db: &TestDb, model: Arc<dyn ChatModel>) -> State {
    State {
        db: db.app.clone(),
        identity: IdentitySource::default(),
        model,
        retriever: Arc::new(NoRetrieval),
        limits: ChatLimits::default(),
        alerts: None,
    }
}

pub fn offline_state(db: &TestDb) -> State {
    state_with(db, Arc::new(OfflineChat))
}

pub async fn chat(state: &State, farm: Uuid, user: &str, body: Value) -> (u16, Value) {
    let req = apigw_request(
        "POST",
        &format!("/farms/{farm}/chat"),
        Some(user),
        &[("content-type", "application/json")],
        Some(&body.to_string()),
    );
    let res: Response<Body> = chat::handle(state, req).await;
    farmops_http::testing::openapi::assert_conforms_path(
        "POST",
        &format!("/farms/{farm}/chat"),
        &res,
    );
    (res.status().as_u16(), body_json(&res))
}

/// A farm with an owner `owner-<name>` and `credits`.
pub async fn farm(db: &TestDb, name: &str, credits: i64) -> Result<(Uuid, String)> {
    let farm = db.farm(name, credits).await?;
    let owner = format!("owner-{name}");
    db.member(farm, &owner, "owner").await?;
    Ok((farm, owner))
}

/// `SELECT count(*)` (or any one bigint) inside the farm's tenant.
pub async fn scalar(db: &TestDb, farm: Uuid, sql: &str) -> Result<i64> {
    let tx = db.app.tenant(farm).await?;
    let row = tx.query_one(sql, &[]).await?;
    Ok(row.get(0))
}

pub async fn balance(db: &TestDb, farm: Uuid) -> Result<i64> {
    scalar(db, farm, "SELECT credit_balance FROM farms").await
}

pub async fn run_row(db: &TestDb, farm: Uuid, run: &str) -> Result<(String, i64, i64)> {
    let tx = db.app.tenant(farm).await?;
    let id = Uuid::parse_str(run)?;
    let row = tx
        .query_one(
            "SELECT status, credits_reserved, coalesce(credits_charged, -1) FROM ai_runs WHERE id = $1",
            &[(&id, Type::UUID)],
        )
        .await?;
    Ok((row.get(0), row.get(1), row.get(2)))
}

pub async fn ledger_holds(db: &TestDb, farm: Uuid) -> Result<bool> {
    let tx = db.app.tenant(farm).await?;
    Ok(farmops::credits::audit_ledger(&tx).await?.holds)
}

/// Rows the turn may write on a farm: drafts, records of every type, recommendations, messages.
pub async fn written(db: &TestDb, farm: Uuid) -> Result<i64> {
    scalar(
        db,
        farm,
        "SELECT (SELECT count(*) FROM assistant_drafts) + (SELECT count(*) FROM ai_recommendations)
              + (SELECT count(*) FROM messages) + (SELECT count(*) FROM conversations)
              + (SELECT count(*) FROM mortality_events) + (SELECT count(*) FROM feed_logs)
              + (SELECT count(*) FROM sales) + (SELECT count(*) FROM expenses)
              + (SELECT count(*) FROM water_logs) + (SELECT count(*) FROM weight_records)
              + (SELECT count(*) FROM symptom_reports) + (SELECT count(*) FROM notes)
              + (SELECT count(*) FROM tasks)",
    )
    .await
}
