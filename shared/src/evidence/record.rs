//! Recording the evidence a run leaves: its evals, its feedback, its recommendations.

use serde_json::Value;
use uuid::Uuid;

use crate::{
    db::{TenantTx, Type},
    error::Result,
};

/// Stores a rule-based eval of a run (what the chat turn records).
pub async fn record_eval(
    tx: &TenantTx,
    run_id: Uuid,
    name: &str,
    passed: bool,
    details: &Value,
) -> Result<Uuid> {
    let farm_id = tx.farm_id();
    let row = tx
        .query_one(
            "INSERT INTO ai_evals (farm_id, ai_run_id, name, passed, details)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[
                (&farm_id, Type::UUID),
                (&run_id, Type::UUID),
                (&name, Type::TEXT),
                (&passed, Type::BOOL),
                (details, Type::JSONB),
            ],
        )
        .await?;
    Ok(row.get(0))
}

/// Stores a user's rating of a run (what the feedback route records).
pub async fn record_feedback(
    tx: &TenantTx,
    run_id: Uuid,
    user_id: &str,
    rating: &str,
    comment: Option<&str>,
) -> Result<Uuid> {
    let farm_id = tx.farm_id();
    let row = tx
        .query_one(
            "INSERT INTO ai_feedback (farm_id, ai_run_id, user_id, rating, comment)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[
                (&farm_id, Type::UUID),
                (&run_id, Type::UUID),
                (&user_id, Type::TEXT),
                (&rating, Type::TEXT),
                (&comment, Type::TEXT),
            ],
        )
        .await?;
    Ok(row.get(0))
}

/// Stores a recommendation a run made (pending until a manager decides).
pub async fn record_recommendation(
    tx: &TenantTx,
    run_id: Uuid,
    title: &str,
    body: &str,
    created_by: &str,
) -> Result<Uuid> {
    let farm_id = tx.farm_id();
    let row = tx
        .query_one(
            "INSERT INTO ai_recommendations (farm_id, ai_run_id, title, body, created_by)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[
                (&farm_id, Type::UUID),
                (&run_id, Type::UUID),
                (&title, Type::TEXT),
                (&body, Type::TEXT),
                (&created_by, Type::TEXT),
            ],
        )
        .await?;
    Ok(row.get(0))
}
