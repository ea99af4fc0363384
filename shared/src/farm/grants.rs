//! The farm's credit lots (owner and manager, [`Role::may_read_evidence`]): what each grant or
//! purchase left, when it expires, where it came from. Not paginated: a farm has one lot per
//! grant or top-up, so few, and the app shows them all (open ones first, in spend order).

use serde::Serialize;

use crate::{
    credits::{self, Lot, LotStatus},
    db::TenantTx,
    error::Result,
    membership::{self, Role},
};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Grants {
    /// Credits the farm owns: what its open lots hold.
    pub balance: i64,
    /// What a hold can take now: the live lots (effective, unexpired, not revoked).
    pub spendable: i64,
    pub lots: Vec<Lot>,
}

/// `GET /farms/{farm_id}/grants`.
#[tracing::instrument(skip(tx), fields(farm_id = %tx.farm_id()))]
pub async fn list(tx: &TenantTx, user_id: &str) -> Result<Grants> {
    membership::require_role(
        tx,
        user_id,
        "read the farm's credits",
        Role::may_read_evidence,
    )
    .await?;
    let lots = credits::list_lots(tx).await?;
    Ok(grants_of(lots))
}

/// Balance and spendable, summed from the lots (pure).
pub fn grants_of(lots: Vec<Lot>) -> Grants {
    let sum = |keep: fn(LotStatus) -> bool| -> i64 {
        lots.iter()
            .filter(|l| keep(l.status))
            .map(|l| l.remaining)
            .sum()
    };
    Grants {
        balance: sum(|s| s != LotStatus::Closed),
        spendable: sum(|s| s == LotStatus::Live),
        lots,
    }
}
