//! The app's API over one farm (issue 21): what the farm-facing screens read and change.
//!
//! * reads (the `evidence` function): [`conversations`] (and their messages),
//!   [`recommendations`], [`records`] of every type with provenance, [`memories`],
//!   [`settings`], [`members`], the credit lots ([`grants`]), a member's usage
//!   ([`budgets::usage`]);
//! * writes (the `farm` function): the farm's autonomy ([`settings::set_autonomy`]),
//!   membership ([`members::set_role`], [`members::remove`]), a member's budget
//!   ([`budgets::set`]), forgetting a memory ([`memories::forget`]).
//!
//! Every function takes the tenant transaction and the caller, checks membership (404 for a
//! farm the caller is not a member of) and role (403) first, then the parameters (422).
//! Lists that grow are keyset-paginated, newest first ([`PageParams`]: `limit`, `cursor`, the
//! evidence page's opaque cursor). Writes go through the database's own doors (SECURITY
//! DEFINER functions of migration 0070 that check the role again, validate and record the act
//! in `farm_events`); their refusals come back as [`refusal`]s.

pub mod alerts;
pub mod budgets;
pub mod conversations;
pub mod grants;
pub mod members;
pub mod memories;
pub mod recommendations;
pub mod records;
pub mod settings;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::{
    db::{TenantTx, Type},
    error::{Error, FieldError, Result},
    evidence::Cursor,
};

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

/// `limit` (1..=200, default 50) and `cursor` (the previous page's `next_cursor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageParams {
    pub limit: i64,
    pub cursor: Option<Cursor>,
}

impl Default for PageParams {
    fn default() -> Self {
        PageParams {
            limit: DEFAULT_LIMIT,
            cursor: None,
        }
    }
}

impl PageParams {
    /// Reads `limit` and `cursor`; a bad value adds a field error to `errors`.
    pub fn parse<'a>(
        param: &impl Fn(&str) -> Option<&'a str>,
        errors: &mut Vec<FieldError>,
    ) -> PageParams {
        let mut page = PageParams::default();
        if let Some(v) = param("limit") {
            match v.parse::<i64>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => page.limit = n,
                _ => errors.push(FieldError::new(
                    "limit",
                    format!("must be an integer from 1 to {MAX_LIMIT}"),
                )),
            }
        }
        if let Some(v) = param("cursor") {
            match Cursor::decode(v) {
                Some(c) => page.cursor = Some(c),
                None => errors.push(FieldError::new(
                    "cursor",
                    "is not a cursor this API returned",
                )),
            }
        }
        page
    }

    /// `(cursor created_at, cursor id, limit + 1)`: the keyset parameters of a page query.
    pub fn keyset(&self) -> (Option<DateTime<Utc>>, Option<uuid::Uuid>, i64) {
        (
            self.cursor.map(|c| c.created_at),
            self.cursor.map(|c| c.id),
            self.limit + 1,
        )
    }
}

/// Keeps the first `limit` of `rows` (fetched with `limit + 1`) and the cursor after the last
/// one kept when there are more.
pub fn page_of<T>(
    mut rows: Vec<T>,
    limit: i64,
    key: impl Fn(&T) -> Cursor,
) -> (Vec<T>, Option<String>) {
    let limit = usize::try_from(limit).unwrap_or(0);
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = if more {
        rows.last().map(|r| key(r).encode())
    } else {
        None
    };
    (rows, next)
}

/// All errors in `errors` as one 422, or `Ok`.
pub fn invalid_if_any(errors: Vec<FieldError>) -> Result<()> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(errors))
    }
}

/// A database door's refusal as the API's error: FO403 -> 403, FO404 -> 404 (DETAIL names
/// what), FO409 -> 409, FO422 -> 422 (DETAIL names the field), a unique violation (a
/// concurrent identical write) -> 409. Anything else is passed through unchanged.
pub fn refusal(error: Error) -> Error {
    let Error::Unexpected(source) = &error else {
        return error;
    };
    let Some(db) = source
        .downcast_ref::<tokio_postgres::Error>()
        .and_then(|e| e.as_db_error())
    else {
        return error;
    };
    let message = db.message().to_string();
    let detail = db.detail().unwrap_or_default();
    match db.code().code() {
        "FO403" => Error::Forbidden(message),
        "FO404" => Error::NotFound(match detail {
            "member" => "member",
            "memory" => "memory",
            _ => "farm",
        }),
        "FO409" => Error::Conflict {
            what: "member",
            status: "the farm's last owner".into(),
        },
        "FO422" => Error::invalid(if detail.is_empty() { "body" } else { detail }, message),
        "23505" => Error::Conflict {
            what: "member",
            status: "being changed by another request".into(),
        },
        _ => error,
    }
}

/// One governance act done through the API (`farm_events`): who, when, what.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FarmEvent {
    pub id: i64,
    /// `autonomy_changed`, `memory_forgotten`, `member_added`, `member_role_changed`,
    /// `member_removed`, `member_budget_set`, `credit_alerts_set`.
    pub kind: String,
    pub actor: String,
    /// The member or memory it is about.
    pub subject: Option<String>,
    pub details: Value,
    pub created_at: DateTime<Utc>,
}

pub const EVENTS_IN_EVIDENCE: i64 = 50;

/// The farm's latest governance acts, newest first (what the evidence page shows).
pub async fn recent_events(tx: &TenantTx, limit: i64) -> Result<Vec<FarmEvent>> {
    let farm_id = tx.farm_id();
    let rows = tx
        .query(
            "SELECT id, kind, actor, subject, details, created_at FROM farm_events
              WHERE farm_id = $1 ORDER BY id DESC LIMIT $2",
            &[(&farm_id, Type::UUID), (&limit, Type::INT8)],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| FarmEvent {
            id: r.get(0),
            kind: r.get(1),
            actor: r.get(2),
            subject: r.get(3),
            details: r.get(4),
            created_at: r.get(5),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&'static str, &'static str)]) -> (PageParams, Vec<FieldError>) {
        let mut errors = Vec::new();
        let p = PageParams::parse(
            &|k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| *v),
            &mut errors,
        );
        (p, errors)
    }

    #[test]
    fn page_params_are_checked() {
        assert_eq!(parse(&[]).0, PageParams::default());
        assert_eq!(parse(&[("limit", "200")]).0.limit, 200);
        for (k, v) in [
            ("limit", "0"),
            ("limit", "201"),
            ("limit", "x"),
            ("cursor", "nope"),
        ] {
            let (_, errors) = parse(&[(k, v)]);
            assert_eq!(errors.len(), 1, "{k}={v}");
            assert_eq!(errors[0].field, k);
        }
    }

    #[test]
    fn a_page_keeps_limit_rows_and_says_if_there_are_more() {
        let at = |i: i64| Cursor {
            created_at: DateTime::from_timestamp(i, 0).unwrap(),
            id: uuid::Uuid::nil(),
        };
        let (rows, next) = page_of(vec![3, 2, 1], 2, |i| at(*i));
        assert_eq!(rows, [3, 2]);
        assert_eq!(next, Some(at(2).encode()));
        let (rows, next) = page_of(vec![3, 2], 2, |i| at(*i));
        assert_eq!(rows, [3, 2]);
        assert_eq!(next, None);
    }
}
