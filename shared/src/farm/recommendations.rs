//! The farm's recommendations, as the app lists them (every member reads them; deciding is
//! [`crate::decisions`]).

use serde::Serialize;

use super::{PageParams, invalid_if_any, page_of};
use crate::{
    db::{TenantTx, Type},
    error::{FieldError, Result},
    evidence::Cursor,
    membership,
    recommendations::{RECOMMENDATION_COLUMNS, Recommendation},
    status::RecommendationStatus,
};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecommendationPage {
    pub recommendations: Vec<Recommendation>,
    /// Pass as `cursor` for the next (older) page; none on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /farms/{farm_id}/recommendations?status=`: newest first, optionally of one status.
#[tracing::instrument(skip(tx, param), fields(farm_id = %tx.farm_id()))]
pub async fn list<'a>(
    tx: &TenantTx,
    user_id: &str,
    param: impl Fn(&str) -> Option<&'a str>,
) -> Result<RecommendationPage> {
    membership::member_role(tx, user_id).await?;
    let mut errors = Vec::new();
    let page = PageParams::parse(&param, &mut errors);
    let status = param("status").map(|s| (s, RecommendationStatus::parse(s)));
    if status.is_some_and(|(_, parsed)| parsed.is_none()) {
        errors.push(FieldError::new(
            "status",
            "must be one of pending, approved, rejected",
        ));
    }
    invalid_if_any(errors)?;
    let (at, id, fetch) = page.keyset();
    let status = status
        .and_then(|(_, parsed)| parsed)
        .map(RecommendationStatus::as_str);
    let farm_id = tx.farm_id();
    let rows = tx
        .query(
            &format!(
                "SELECT {RECOMMENDATION_COLUMNS} FROM ai_recommendations
                  WHERE farm_id = $1 AND ($2::text IS NULL OR status = $2)
                    AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4))
                  ORDER BY created_at DESC, id DESC LIMIT $5"
            ),
            &[
                (&farm_id, Type::UUID),
                (&status, Type::TEXT),
                (&at, Type::TIMESTAMPTZ),
                (&id, Type::UUID),
                (&fetch, Type::INT8),
            ],
        )
        .await?;
    let all = rows.iter().map(Recommendation::from_row).collect();
    let (recommendations, next_cursor) = page_of(all, page.limit, |r: &Recommendation| Cursor {
        created_at: r.created_at,
        id: r.id,
    });
    Ok(RecommendationPage {
        recommendations,
        next_cursor,
    })
}
