//! Recommendations: advice the AI gives (vaccinate pen 3, reduce feed) that only a human may
//! approve or reject. Approving writes nothing else; it records the human act.
//!
//! The schema allows `pending -> approved | rejected` once; decided rows never change and a
//! rejection says why. Refusals come in the same order as for drafts: 404 (not this farm's),
//! 403 (role: owner and manager only), 409 (already decided, with its status), 422 (payload).

use serde::Serialize;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::{
    db::{TenantTx, Type},
    drafts::Decider,
    error::{Error, FieldError, Result},
    text::{Note, Reason, Title, TitleKind},
};

pub use crate::status::RecommendationStatus;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    pub id: Uuid,
    pub farm_id: Uuid,
    pub ai_run_id: Option<Uuid>,
    pub title: String,
    pub body: String,
    pub status: RecommendationStatus,
    pub created_by: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub decided_by: Option<String>,
    pub decided_at: Option<chrono::DateTime<chrono::Utc>>,
    pub decision_note: Option<String>,
}

/// The columns [`Recommendation::from_row`] reads, by name.
pub const RECOMMENDATION_COLUMNS: &str = "id, farm_id, ai_run_id, title, body, status, created_by, created_at, \
     decided_by, decided_at, decision_note";

impl Recommendation {
    pub fn from_row(row: &Row) -> Recommendation {
        Recommendation {
            id: row.get("id"),
            farm_id: row.get("farm_id"),
            ai_run_id: row.get("ai_run_id"),
            title: row.get("title"),
            body: row.get("body"),
            status: row.get("status"),
            created_by: row.get("created_by"),
            created_at: row.get("created_at"),
            decided_by: row.get("decided_by"),
            decided_at: row.get("decided_at"),
            decision_note: row.get("decision_note"),
        }
    }
}

/// A recommendation to hold for a human (from the chat turn, or tests).
#[derive(Debug, Clone)]
pub struct NewRecommendation<'a> {
    pub ai_run_id: Option<Uuid>,
    pub title: &'a str,
    pub body: &'a str,
    pub created_by: &'a str,
}

/// The longest body, in characters (the column's CHECK).
pub const BODY_MAX: usize = 4000;

/// Title ([`Title::parse`], 1..200 characters) and body (1..4000 characters), trimmed; 422
/// naming each bad field. Returns the parsed title.
pub fn validate_new(rec: &NewRecommendation<'_>) -> Result<Title> {
    let mut errors = Vec::new();
    let title = Title::parse(TitleKind::Recommendation, rec.title)
        .map_err(|e| errors.push(e))
        .ok();
    let n = rec.body.trim().chars().count();
    if n == 0 || n > BODY_MAX {
        errors.push(FieldError::new(
            "body",
            format!("must be 1 to {BODY_MAX} characters"),
        ));
    }
    match title {
        Some(title) if errors.is_empty() => Ok(title),
        _ => Err(Error::Invalid(errors)),
    }
}

pub async fn create_recommendation(
    tx: &TenantTx,
    rec: &NewRecommendation<'_>,
) -> Result<Recommendation> {
    let title = validate_new(rec)?;
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO ai_recommendations (farm_id, ai_run_id, title, body, created_by)
                 VALUES ($1, $2, $3, $4, $5) RETURNING {RECOMMENDATION_COLUMNS}"
            ),
            &[
                (&tx.farm_id(), Type::UUID),
                (&rec.ai_run_id, Type::UUID),
                (&title.as_str(), Type::TEXT),
                (&rec.body.trim(), Type::TEXT),
                (&rec.created_by, Type::TEXT),
            ],
        )
        .await?;
    Ok(Recommendation::from_row(&row))
}

/// One recommendation of the tenant's farm; 404 if it is not the farm's.
pub async fn get_recommendation(tx: &TenantTx, id: Uuid) -> Result<Recommendation> {
    select(tx, id, "").await
}

async fn select(tx: &TenantTx, id: Uuid, lock: &str) -> Result<Recommendation> {
    let row = tx
        .query_opt(
            &format!(
                "SELECT {RECOMMENDATION_COLUMNS} FROM ai_recommendations WHERE farm_id = $1 AND id = $2 {lock}"
            ),
            &[(&tx.farm_id(), Type::UUID), (&id, Type::UUID)],
        )
        .await?
        .ok_or(Error::NotFound("recommendation"))?;
    Ok(Recommendation::from_row(&row))
}

/// Locks the recommendation and applies the refusals common to both decisions.
async fn lock_for_decision(tx: &TenantTx, id: Uuid, by: Decider<'_>) -> Result<Recommendation> {
    let rec = select(tx, id, "FOR UPDATE").await?;
    if !by.role.may_decide_recommendation() {
        return Err(Error::Forbidden(format!(
            "a {} may not decide a recommendation",
            by.role.as_str()
        )));
    }
    if rec.status != RecommendationStatus::Pending {
        return Err(Error::Conflict {
            what: "recommendation",
            status: rec.status.as_str().into(),
        });
    }
    Ok(rec)
}

async fn decide(
    tx: &TenantTx,
    id: Uuid,
    by: Decider<'_>,
    status: RecommendationStatus,
    note: Option<&str>,
) -> Result<Recommendation> {
    let row = tx
        .query_one(
            &format!(
                "UPDATE ai_recommendations
                    SET status = $3, decided_by = $4, decided_at = now(), decision_note = $5
                  WHERE farm_id = $1 AND id = $2 AND status = 'pending'
                 RETURNING {RECOMMENDATION_COLUMNS}"
            ),
            &[
                (&tx.farm_id(), Type::UUID),
                (&id, Type::UUID),
                (&status.as_str(), Type::TEXT),
                (&by.user_id, Type::TEXT),
                (&note, Type::TEXT),
            ],
        )
        .await?;
    Ok(Recommendation::from_row(&row))
}

/// Approves a pending recommendation, with an optional note ([`Note::parse`]: trimmed, at
/// most 500 characters; blank is none).
#[tracing::instrument(skip(tx, note), fields(farm_id = %tx.farm_id(), recommendation_id = %id))]
pub async fn approve_recommendation(
    tx: &TenantTx,
    id: Uuid,
    by: Decider<'_>,
    note: Option<&str>,
) -> Result<Recommendation> {
    lock_for_decision(tx, id, by).await?;
    let note = Note::parse(note)?;
    decide(
        tx,
        id,
        by,
        RecommendationStatus::Approved,
        note.as_ref().map(Note::as_str),
    )
    .await
}

/// Rejects a pending recommendation with a reason ([`Reason::parse`]: trimmed, 1 to 500
/// characters).
#[tracing::instrument(skip(tx, reason), fields(farm_id = %tx.farm_id(), recommendation_id = %id))]
pub async fn reject_recommendation(
    tx: &TenantTx,
    id: Uuid,
    by: Decider<'_>,
    reason: &str,
) -> Result<Recommendation> {
    lock_for_decision(tx, id, by).await?;
    let reason = Reason::parse(reason)?;
    decide(
        tx,
        id,
        by,
        RecommendationStatus::Rejected,
        Some(reason.as_str()),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_recommendations_are_validated() {
        let ok = NewRecommendation {
            ai_run_id: None,
            title: "Vaccinate pen 3",
            body: "Newcastle disease booster is due.",
            created_by: "ai",
        };
        assert!(validate_new(&ok).is_ok());
        let long_title = "t".repeat(201);
        let long_body = "b".repeat(4001);
        let cases = [
            ("", "body", vec!["title"]),
            ("  ", "body", vec!["title"]),
            (long_title.as_str(), "body", vec!["title"]),
            ("title", "", vec!["body"]),
            ("title", long_body.as_str(), vec!["body"]),
            ("", "", vec!["title", "body"]),
        ];
        for (title, body, fields) in cases {
            let err = validate_new(&NewRecommendation {
                title,
                body,
                ..ok.clone()
            })
            .unwrap_err();
            let Error::Invalid(errors) = err else {
                panic!("expected 422")
            };
            let got: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
            assert_eq!(got, fields, "{title:?} / {body:?}");
        }
    }
}
