//! The farm's members: who they are and their roles (owner and manager read them,
//! [`Role::may_manage_members`]); adding a member or changing a role
//! ([`Role::may_assign_role`]: owners any, managers add workers and viewers); removing one
//! (owners, [`Role::may_remove_member`]).
//!
//! Changes go through the database's `set_member_role` and `remove_member` (migration 0070),
//! which check the same rules again and record the act in `farm_events`; the database keeps
//! every farm's last owner (trigger `farm_members_keep_an_owner`: 409). Membership is read on
//! every request, so a removed member's next request finds no farm (404).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::refusal;
use crate::{
    db::{TenantTx, Type},
    error::{Error, Result},
    membership::{self, Role},
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub user_id: String,
    pub role: Role,
    pub since: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemberList {
    pub members: Vec<Member>,
}

/// The body of `PUT /farms/{farm_id}/members/{user_id}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    pub role: Role,
}

/// The largest member list answered (a farm's staff, not a growing history).
pub const MAX_MEMBERS: i64 = 1000;

fn member_of(row: &tokio_postgres::Row) -> Result<Member> {
    let role: &str = row.get(1);
    Ok(Member {
        user_id: row.get(0),
        role: Role::parse(role).ok_or_else(|| Error::unexpected("unknown role"))?,
        since: row.get(2),
    })
}

/// `GET /farms/{farm_id}/members`: owners first, then by how long they have been members.
#[tracing::instrument(skip(tx), fields(farm_id = %tx.farm_id()))]
pub async fn list(tx: &TenantTx, user_id: &str) -> Result<MemberList> {
    membership::require_role(tx, user_id, "see the members", Role::may_manage_members).await?;
    let farm_id = tx.farm_id();
    let rows = tx
        .query(
            "SELECT user_id, role, created_at FROM farm_members WHERE farm_id = $1
              ORDER BY array_position(ARRAY['owner', 'manager', 'worker', 'viewer'], role),
                       created_at, user_id
              LIMIT $2",
            &[(&farm_id, Type::UUID), (&MAX_MEMBERS, Type::INT8)],
        )
        .await?;
    Ok(MemberList {
        members: rows.iter().map(member_of).collect::<Result<_>>()?,
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
