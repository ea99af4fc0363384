//! A member's rating of a run.

use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use crate::{
    db::{Db, Type},
    error::{Error, Result},
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    pub rating: String,
    #[serde(default)]
    pub comment: Option<String>,
}

/// Records (or replaces) the caller's rating of a run of their farm. Any member may rate;
/// a run of another farm, or none, is 404.
#[tracing::instrument(skip(db, feedback), fields(farm_id = %farm_id, run_id = %run_id))]
pub async fn give_feedback(
    db: &Db,
    farm_id: Uuid,
    user_id: &str,
    run_id: Uuid,
    feedback: &FeedbackRequest,
) -> Result<Value> {
    if feedback.rating != "up" && feedback.rating != "down" {
        return Err(Error::invalid("rating", "must be \"up\" or \"down\""));
    }
    let comment = feedback
        .comment
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    if comment.is_some_and(|c| c.chars().count() > 2000) {
        return Err(Error::invalid("comment", "must be at most 2000 characters"));
    }
    let tx = db.tenant(farm_id).await?;
    crate::membership::member_role(&tx, user_id).await?;
    let row = tx
        .query_opt(
            "INSERT INTO ai_feedback (farm_id, ai_run_id, user_id, rating, comment)
             SELECT farm_id, id, $3, $4, $5 FROM ai_runs WHERE farm_id = $1 AND id = $2
             ON CONFLICT (ai_run_id, user_id) DO UPDATE SET rating = EXCLUDED.rating, comment = EXCLUDED.comment, created_at = now()
             RETURNING jsonb_build_object('id', id, 'run_id', ai_run_id, 'rating', rating, 'comment', comment)",
            &[
                (&farm_id, Type::UUID),
                (&run_id, Type::UUID),
                (&user_id, Type::TEXT),
                (&feedback.rating, Type::TEXT),
                (&comment, Type::TEXT),
            ],
        )
        .await?
        .ok_or(Error::NotFound("run"))?;
    tx.commit().await?;
    Ok(row.get(0))
}
