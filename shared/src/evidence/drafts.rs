//! The farm's drafts list and its `status` filter.

use crate::{
    db::{TenantTx, Type},
    drafts::{DRAFT_COLUMNS, Draft},
    error::{Error, Result},
    status::DraftStatus,
};

/// Every draft status, as the `status` filter accepts it.
pub const DRAFT_STATUSES: &[DraftStatus] = DraftStatus::ALL;
pub const DRAFT_LIST_LIMIT: i64 = 200;

/// `status` from the query string: `None` = every status; an unknown one is a 422.
pub fn parse_draft_status(v: Option<&str>) -> Result<Option<DraftStatus>> {
    match v {
        None => Ok(None),
        Some(s) => DraftStatus::parse(s).map(Some).ok_or_else(|| {
            Error::invalid("status", "must be one of pending, confirmed, discarded")
        }),
    }
}

/// The farm's drafts (newest first, at most [`DRAFT_LIST_LIMIT`]), optionally of one status.
pub async fn list_drafts(tx: &TenantTx, status: Option<DraftStatus>) -> Result<Vec<Draft>> {
    let farm_id = tx.farm_id();
    let status = status.map(DraftStatus::as_str);
    let rows = tx
        .query(
            &format!(
                "SELECT {DRAFT_COLUMNS} FROM assistant_drafts
                  WHERE farm_id = $1 AND ($2::text IS NULL OR status = $2)
                  ORDER BY created_at DESC, id DESC LIMIT $3"
            ),
            &[
                (&farm_id, Type::UUID),
                (&status, Type::TEXT),
                (&DRAFT_LIST_LIMIT, Type::INT8),
            ],
        )
        .await?;
    rows.iter().map(Draft::from_row).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draft_status_filter() {
        assert_eq!(parse_draft_status(None).unwrap(), None);
        assert_eq!(
            parse_draft_status(Some("pending")).unwrap(),
            Some(DraftStatus::Pending)
        );
        assert_eq!(parse_draft_status(Some("bogus")).unwrap_err().status(), 422);
    }
}
