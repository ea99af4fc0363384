//! Who may do what on a farm. Membership and role are read from the database on every
//! request; a caller who is not a member gets 404 (a farm's existence is not leaked).

use serde::{Deserialize, Serialize};

use crate::{
    db::{TenantTx, Type},
    error::{Error, Result},
    records::RecordType,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Worker,
    Manager,
    Owner,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Owner, Role::Manager, Role::Worker, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Manager => "manager",
            Role::Worker => "worker",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Talk to the AI (which may write drafts and records): workers and up.
    pub fn may_chat(self) -> bool {
        self >= Role::Worker
    }

    /// Confirm or discard a draft: owner and manager any; a worker only non-financial ones.
    pub fn may_decide_draft(self, record_type: RecordType) -> bool {
        match self {
            Role::Owner | Role::Manager => true,
            Role::Worker => !record_type.is_financial_or_destructive(),
            Role::Viewer => false,
        }
    }

    /// Approve or reject an AI recommendation: owner and manager.
    pub fn may_decide_recommendation(self) -> bool {
        self >= Role::Manager
    }

    /// Read the audit trail and the credit ledger: owner and manager.
    pub fn may_read_evidence(self) -> bool {
        self >= Role::Manager
    }

    /// Read the farm's credit statement (balance, ledger, lots): owner and manager, as the
    /// evidence.
    pub fn may_read_credits(self) -> bool {
        self.may_read_evidence()
    }

    /// Export the signed evidence bundle: the owner only.
    pub fn may_export_evidence(self) -> bool {
        self == Role::Owner
    }

    /// Add documents to the farm's knowledge: workers and up.
    pub fn may_add_documents(self) -> bool {
        self >= Role::Worker
    }

    /// Delete documents and re-embed the farm's knowledge: owner and manager.
    pub fn may_manage_knowledge(self) -> bool {
        self >= Role::Manager
    }

    /// Read every member's conversations (a worker or viewer reads only their own).
    pub fn may_read_all_conversations(self) -> bool {
        self >= Role::Manager
    }

    /// See and forget what the assistant remembers about the farm: owner and manager.
    pub fn may_manage_memories(self) -> bool {
        self >= Role::Manager
    }

    /// Change the farm's AI autonomy: the owner only.
    pub fn may_set_autonomy(self) -> bool {
        self == Role::Owner
    }

    /// See the farm's members and change them at all (what each may change: below).
    pub fn may_manage_members(self) -> bool {
        self >= Role::Manager
    }

    /// Give `member` (currently `current`, `None` if not a member yet) the role `new`: an
    /// owner any; a manager adds workers and viewers and moves them between those two roles.
    /// (The database's `set_member_role` enforces the same.)
    pub fn may_assign_role(self, current: Option<Role>, new: Role) -> bool {
        match self {
            Role::Owner => true,
            Role::Manager => current.is_none_or(|c| c <= Role::Worker) && new <= Role::Worker,
            Role::Worker | Role::Viewer => false,
        }
    }

    /// Remove a member: the owner only.
    pub fn may_remove_member(self) -> bool {
        self == Role::Owner
    }
}

/// The caller's role on the tenant's farm, or 404 if they are not a member.
pub async fn member_role(tx: &TenantTx, user_id: &str) -> Result<Role> {
    let farm_id = tx.farm_id();
    let row = tx
        .query_opt(
            "SELECT role FROM farm_members WHERE farm_id = $1 AND user_id = $2",
            &[(&farm_id, Type::UUID), (&user_id, Type::TEXT)],
        )
        .await?
        .ok_or(Error::NotFound("farm"))?;
    Role::parse(row.get(0)).ok_or_else(|| Error::unexpected("unknown role in farm_members"))
}

/// The caller's role, read under a `FOR SHARE` lock on their membership row held until the
/// transaction ends (`lock_member_for_turn`, migration 0071), or `None` if they are no longer
/// a member. A removal or demotion either committed before this read or waits for the
/// transaction to end: what the transaction writes, the caller was still allowed to write.
pub async fn lock_member_role(tx: &TenantTx, user_id: &str) -> Result<Option<Role>> {
    let row = tx
        .query_one("SELECT lock_member_for_turn($1)", &[(&user_id, Type::TEXT)])
        .await?;
    row.get::<_, Option<&str>>(0)
        .map(|r| Role::parse(r).ok_or_else(|| Error::unexpected("unknown role in farm_members")))
        .transpose()
}

/// Like [`member_role`], then refuses with 403 unless `allowed(role)`.
pub async fn require_role(
    tx: &TenantTx,
    user_id: &str,
    what: &str,
    allowed: impl Fn(Role) -> bool,
) -> Result<Role> {
    let role = member_role(tx, user_id).await?;
    if allowed(role) {
        Ok(role)
    } else {
        Err(Error::Forbidden(format!(
            "a {} may not {what}",
            role.as_str()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_rights_by_role_and_record_type() {
        for t in RecordType::ALL {
            assert!(Role::Owner.may_decide_draft(t));
            assert!(Role::Manager.may_decide_draft(t));
            assert_eq!(
                Role::Worker.may_decide_draft(t),
                !t.is_financial_or_destructive(),
                "{t}"
            );
            assert!(!Role::Viewer.may_decide_draft(t));
        }
        let rec: Vec<bool> = Role::ALL
            .iter()
            .map(|r| r.may_decide_recommendation())
            .collect();
        assert_eq!(rec, [true, true, false, false]);
        let chat: Vec<bool> = Role::ALL.iter().map(|r| r.may_chat()).collect();
        assert_eq!(chat, [true, true, true, false]);
        let evidence: Vec<bool> = Role::ALL.iter().map(|r| r.may_read_evidence()).collect();
        assert_eq!(evidence, [true, true, false, false]);
    }

    #[test]
    fn api_rights_by_role() {
        let by = |f: fn(Role) -> bool| Role::ALL.iter().map(|r| f(*r)).collect::<Vec<_>>();
        assert_eq!(
            by(Role::may_read_all_conversations),
            [true, true, false, false]
        );
        assert_eq!(by(Role::may_manage_memories), [true, true, false, false]);
        assert_eq!(by(Role::may_set_autonomy), [true, false, false, false]);
        assert_eq!(by(Role::may_remove_member), [true, false, false, false]);
        assert_eq!(by(Role::may_manage_members), [true, true, false, false]);
        for current in [None, Some(Role::Worker), Some(Role::Viewer)] {
            for new in [Role::Worker, Role::Viewer] {
                assert!(Role::Manager.may_assign_role(current, new));
            }
            for new in [Role::Manager, Role::Owner] {
                assert!(!Role::Manager.may_assign_role(current, new));
            }
        }
        for current in [Some(Role::Manager), Some(Role::Owner)] {
            assert!(!Role::Manager.may_assign_role(current, Role::Viewer));
        }
        for r in Role::ALL {
            assert!(Role::Owner.may_assign_role(Some(r), Role::Viewer));
            assert!(!Role::Worker.may_assign_role(None, r));
            assert!(!Role::Viewer.may_assign_role(None, r));
        }
    }

    #[test]
    fn roles_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("admin"), None);
    }
}
