//! The farm's members: who they are and their roles (owner and manager read them,
//! [`Role::may_manage_members`], a keyset page at a time, newest member first); adding a member or changing a role
//! ([`Role::may_assign_role`]: owners any, managers add workers and viewers); removing one
//! (owners, [`Role::may_remove_member`]).
//!
//! Changes go through the database's `set_member_role` and `remove_member` (migration 0070),
//! which check the same rules again and record the act in `farm_events`; the database keeps
//! every farm's last owner (trigger `farm_members_keep_an_owner`: 409). Membership is read on
//! every request, so a removed member's next request finds no farm (404).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{PageParams, invalid_if_any, refusal};
use crate::{
    db::{TenantTx, Type},
    error::{Error, FieldError, Result},
    membership::{self, Role},
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub user_id: String,
    pub role: Role,
    pub since: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemberPage {
    pub members: Vec<Member>,
    /// Pass as `cursor` for the next page (members who joined earlier); none on the last page.
    pub next_cursor: Option<String>,
}

/// Where a page of members ends: the last member's `(since, user_id)`. User ids are text, so
/// the other lists' [`crate::evidence::Cursor`] (a time and a uuid) does not fit; this one is
/// opaque the same way (hex of `micros:user_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberCursor {
    pub since: DateTime<Utc>,
    pub user_id: String,
}

impl MemberCursor {
    pub fn encode(&self) -> String {
        hex::encode(format!(
            "{}:{}",
            self.since.timestamp_micros(),
            self.user_id
        ))
    }

    pub fn decode(s: &str) -> Option<MemberCursor> {
        // a user id is at most 200 characters of up to 4 bytes, hex-encoded
        if s.len() > 1700 {
            return None;
        }
        let text = String::from_utf8(hex::decode(s).ok()?).ok()?;
        let (micros, user_id) = text.split_once(':')?;
        if user_id.is_empty() || user_id.chars().count() > 200 {
            return None;
        }
        Some(MemberCursor {
            since: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            user_id: user_id.to_string(),
        })
    }
}

/// The body of `PUT /farms/{farm_id}/members/{user_id}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    pub role: Role,
}

fn member_of(row: &tokio_postgres::Row) -> Result<Member> {
    let role: &str = row.get(1);
    Ok(Member {
        user_id: row.get(0),
        role: Role::parse(role).ok_or_else(|| Error::unexpected("unknown role"))?,
        since: row.get(2),
    })
}

const LIST_SQL: &str = "SELECT user_id, role, created_at FROM farm_members
  WHERE farm_id = $1 AND ($2::timestamptz IS NULL OR (created_at, user_id) < ($2, $3))
  ORDER BY created_at DESC, user_id DESC
  LIMIT $4";

/// `GET /farms/{farm_id}/members`: newest member first, `limit` and `cursor` like the other
/// lists. A member's place never moves (a role change keeps `since`), so a walk through the
/// pages sees each member once while members are added.
#[tracing::instrument(skip(tx, param), fields(farm_id = %tx.farm_id()))]
pub async fn list<'a>(
    tx: &TenantTx,
    user_id: &str,
    param: impl Fn(&str) -> Option<&'a str>,
) -> Result<MemberPage> {
    membership::require_role(tx, user_id, "see the members", Role::may_manage_members).await?;
    let mut errors = Vec::new();
    // `limit` as every list reads it; the cursor is this list's own
    let page = PageParams::parse(
        &|k| (k != "cursor").then(|| param(k)).flatten(),
        &mut errors,
    );
    let cursor = param("cursor").and_then(|c| {
        let decoded = MemberCursor::decode(c);
        if decoded.is_none() {
            errors.push(FieldError::new(
                "cursor",
                "is not a cursor this API returned",
            ));
        }
        decoded
    });
    invalid_if_any(errors)?;
    let farm_id = tx.farm_id();
    let (at, after) = (
        cursor.as_ref().map(|c| c.since),
        cursor.as_ref().map(|c| c.user_id.as_str()),
    );
    let fetch = page.limit + 1;
    let rows = tx
        .query(
            LIST_SQL,
            &[
                (&farm_id, Type::UUID),
                (&at, Type::TIMESTAMPTZ),
                (&after, Type::TEXT),
                (&fetch, Type::INT8),
            ],
        )
        .await?;
    let mut members = rows.iter().map(member_of).collect::<Result<Vec<_>>>()?;
    let limit = usize::try_from(page.limit).unwrap_or(0);
    let next_cursor = if members.len() > limit {
        members.truncate(limit);
        members.last().map(|m| {
            MemberCursor {
                since: m.since,
                user_id: m.user_id.clone(),
            }
            .encode()
        })
    } else {
        None
    };
    Ok(MemberPage {
        members,
        next_cursor,
    })
}

/// `PUT /farms/{farm_id}/members/{user_id}`: adds the member or changes their role.
#[tracing::instrument(skip(tx, change), fields(farm_id = %tx.farm_id()))]
pub async fn set_role(
    tx: &TenantTx,
    user_id: &str,
    member: &str,
    change: &RoleChange,
) -> Result<Member> {
    let role = membership::member_role(tx, user_id).await?;
    let farm_id = tx.farm_id();
    let current = tx
        .query_opt(
            "SELECT role FROM farm_members WHERE farm_id = $1 AND user_id = $2",
            &[(&farm_id, Type::UUID), (&member, Type::TEXT)],
        )
        .await?
        .and_then(|r| Role::parse(r.get(0)));
    if !role.may_assign_role(current, change.role) {
        return Err(Error::Forbidden(format!(
            "a {} may not make {member} a {}",
            role.as_str(),
            change.role.as_str()
        )));
    }
    let row = tx
        .query_one(
            "SELECT set_member_role($1, $2, $3)",
            &[
                (&user_id, Type::TEXT),
                (&member, Type::TEXT),
                (&change.role.as_str(), Type::TEXT),
            ],
        )
        .await
        .map_err(refusal)?;
    serde_json::from_value(row.get(0)).map_err(|e| Error::unexpected(e.to_string()))
}

/// `DELETE /farms/{farm_id}/members/{user_id}`: `{"removed": user_id}`.
#[tracing::instrument(skip(tx), fields(farm_id = %tx.farm_id()))]
pub async fn remove(tx: &TenantTx, user_id: &str, member: &str) -> Result<serde_json::Value> {
    membership::require_role(tx, user_id, "remove a member", Role::may_remove_member).await?;
    tx.query(
        "SELECT remove_member($1, $2)",
        &[(&user_id, Type::TEXT), (&member, Type::TEXT)],
    )
    .await
    .map_err(refusal)?;
    Ok(serde_json::json!({ "removed": member }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_cursors_round_trip_and_refuse_garbage() {
        let c = MemberCursor {
            since: DateTime::from_timestamp_micros(1_767_225_600_123_456).unwrap(),
            user_id: "auth0|ade:1".into(),
        };
        assert_eq!(MemberCursor::decode(&c.encode()), Some(c));
        for bad in ["", "zz", "00", &hex::encode("12:"), &hex::encode("x:ade")] {
            assert_eq!(MemberCursor::decode(bad), None, "{bad}");
        }
        let long = hex::encode(format!("1:{}", "a".repeat(201)));
        assert_eq!(MemberCursor::decode(&long), None);
    }
}
