//! Grants as lots (migration 0080): every credit a farm owns sits in a lot with a category,
//! a priority, when it takes effect and when it expires. Holds spend lots in order (priority,
//! then soonest expiry, then oldest) and settles return the unspent part to the lots it came
//! from, latest in that order first; reconcile closes lots past expiry with one
//! `expire_grant` leg each, once no open run holds credits from them. All of it is done by
//! the database functions; this module validates the operator's input and reads lots back.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::{
    db::{Db, TenantTx, Type},
    error::{Error, Result},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LotCategory {
    Paid,
    Promotional,
}

impl LotCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            LotCategory::Paid => "paid",
            LotCategory::Promotional => "promotional",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "paid" => Some(LotCategory::Paid),
            "promotional" => Some(LotCategory::Promotional),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LotSource {
    Operator,
    Payment,
    Promotion,
}

impl LotSource {
    pub fn as_str(self) -> &'static str {
        match self {
            LotSource::Operator => "operator",
            LotSource::Payment => "payment",
            LotSource::Promotion => "promotion",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "operator" => Some(LotSource::Operator),
            "payment" => Some(LotSource::Payment),
            "promotion" => Some(LotSource::Promotion),
            _ => None,
        }
    }
}

/// The priority of a lot whose grant names none: between promotions (spent first, lower) and
/// reserves (spent last, higher).
pub const DEFAULT_PRIORITY: i32 = 50;

/// A grant as the operator (or a payment) asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLot {
    pub amount: i64,
    pub category: LotCategory,
    pub priority: i32,
    /// None: now.
    pub effective_at: Option<DateTime<Utc>>,
    /// None: never.
    pub expires_at: Option<DateTime<Utc>>,
    pub source: LotSource,
    /// The same key never grants twice on a farm.
    pub idempotency_key: String,
    pub actor: String,
    pub reason: String,
}

impl NewLot {
    /// An operator's paid grant with no expiry, keyed by a fresh id (it never repeats).
    pub fn operator(amount: i64, actor: &str, reason: &str) -> NewLot {
        NewLot {
            amount,
            category: LotCategory::Paid,
            priority: DEFAULT_PRIORITY,
            effective_at: None,
            expires_at: None,
            source: LotSource::Operator,
            idempotency_key: format!("grant-{}", Uuid::new_v4()),
            actor: actor.into(),
            reason: reason.into(),
        }
    }

    /// The checks the database also makes, as clear errors before it is asked (pure).
    pub fn validate(&self, now: DateTime<Utc>) -> Result<()> {
        if self.amount <= 0 {
            return Err(Error::invalid("amount", "a grant must be positive"));
        }
        if !(0..=100).contains(&self.priority) {
            return Err(Error::invalid("priority", "must be 0 to 100"));
        }
        if let Some(expires) = self.expires_at {
            if expires <= now {
                return Err(Error::invalid("expires_at", "must be in the future"));
            }
            if expires <= self.effective_at.unwrap_or(now) {
                return Err(Error::invalid("expires_at", "must be after effective_at"));
            }
        }
        let within = |s: &str, max: usize| !s.trim().is_empty() && s.chars().count() <= max;
        if !within(&self.reason, 500) {
            return Err(Error::invalid("reason", "must be 1 to 500 characters"));
        }
        if !within(&self.actor, 200) {
            return Err(Error::invalid("actor", "must be 1 to 200 characters"));
        }
        if !within(&self.idempotency_key, 200) {
            return Err(Error::invalid(
                "idempotency_key",
                "must be 1 to 200 characters",
            ));
        }
        Ok(())
    }
}

/// What a grant did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Granted {
    pub lot_id: i64,
    /// False when the idempotency key had already granted this lot: nothing changed.
    pub granted: bool,
    pub balance: i64,
}

/// Grants a lot: one call of `credit_add_lot`, which the owner role (the operator CLI) and the
/// payments door may run and the application role may not.
#[tracing::instrument(skip(tx, lot), fields(farm_id = %tx.farm_id(), amount = lot.amount))]
pub async fn grant_lot(tx: &TenantTx, lot: &NewLot) -> Result<Granted> {
    lot.validate(Utc::now())?;
    let farm_id = tx.farm_id();
    let (category, source) = (lot.category.as_str(), lot.source.as_str());
    let row = tx
        .query_one(
            "SELECT lot_id, granted, balance
               FROM credit_add_lot($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[
                (&farm_id, Type::UUID),
                (&lot.amount, Type::INT8),
                (&category, Type::TEXT),
                (&lot.priority, Type::INT4),
                (&lot.effective_at, Type::TIMESTAMPTZ),
                (&lot.expires_at, Type::TIMESTAMPTZ),
                (&source, Type::TEXT),
                (&lot.idempotency_key, Type::TEXT),
                (&lot.actor, Type::TEXT),
                (&lot.reason, Type::TEXT),
            ],
        )
        .await?;
    Ok(Granted {
        lot_id: row.get(0),
        granted: row.get(1),
        balance: row.get(2),
    })
}

/// Where a lot stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LotStatus {
    /// Not effective yet.
    Pending,
    /// Spendable.
    Live,
    /// Past its expiry, not closed yet (an open run still holds some of it, or reconcile has
    /// not run): nothing more is spent from it.
    Expiring,
    /// A refund clawed it back.
    Revoked,
    /// Closed: expired with its `expire_grant` leg, or revoked with nothing left.
    Closed,
}

/// One lot as the operator and the app see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lot {
    pub id: i64,
    pub category: LotCategory,
    pub priority: i32,
    pub amount: i64,
    pub remaining: i64,
    pub effective_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub source: LotSource,
    pub reason: String,
    pub created_at: DateTime<Utc>,
    pub status: LotStatus,
}

/// The farm's lots in spend order (open ones first), closed ones after.
pub async fn list_lots(tx: &TenantTx) -> Result<Vec<Lot>> {
    let farm_id = tx.farm_id();
    let rows = tx
        .query(
            "SELECT id, category, priority, amount, remaining, effective_at, expires_at, source,
                    reason, created_at, revoked_at IS NOT NULL AS revoked,
                    closed_at IS NOT NULL AS closed, now() AS now
               FROM credit_lots WHERE farm_id = $1
              ORDER BY closed_at IS NOT NULL, priority, expires_at NULLS LAST, id",
            &[(&farm_id, Type::UUID)],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let parse_err =
                |what: &str| Error::unexpected(format!("lot {}: {what}", r.get::<_, i64>("id")));
            let category =
                LotCategory::parse(r.get("category")).ok_or_else(|| parse_err("category"))?;
            let source = LotSource::parse(r.get("source")).ok_or_else(|| parse_err("source"))?;
            let (effective_at, expires_at) = (r.get("effective_at"), r.get("expires_at"));
            Ok(Lot {
                id: r.get("id"),
                category,
                priority: r.get("priority"),
                amount: r.get("amount"),
                remaining: r.get("remaining"),
                effective_at,
                expires_at,
                source,
                reason: r.get("reason"),
                created_at: r.get("created_at"),
                status: lot_status(
                    r.get("revoked"),
                    r.get("closed"),
                    effective_at,
                    expires_at,
                    r.get("now"),
                ),
            })
        })
        .collect()
}

/// A lot's status from its dates and marks (pure).
pub fn lot_status(
    revoked: bool,
    closed: bool,
    effective_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> LotStatus {
    if closed {
        LotStatus::Closed
    } else if revoked {
        LotStatus::Revoked
    } else if expires_at.is_some_and(|e| e <= now) {
        LotStatus::Expiring
    } else if effective_at > now {
        LotStatus::Pending
    } else {
        LotStatus::Live
    }
}

/// What closing a farm's lots did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ClosedLots {
    pub lots: i64,
    /// Credits taken by `expire_grant` legs.
    pub credits_expired: i64,
}

/// Closes the farm's lots past expiry (one `expire_grant` leg each) or revoked, from which no
/// open run holds credits (reconcile).
#[tracing::instrument(skip(tx), fields(farm_id = %tx.farm_id()))]
pub async fn close_lots(tx: &TenantTx) -> Result<ClosedLots> {
    let farm_id = tx.farm_id();
    let row = tx
        .query_one(
            "SELECT lots, expired FROM credit_close_lots($1)",
            &[(&farm_id, Type::UUID)],
        )
        .await?;
    Ok(ClosedLots {
        lots: row.get(0),
        credits_expired: row.get(1),
    })
}

/// Farms with lots to close (ids only; no tenant needed).
pub async fn farms_with_lots_to_close(db: &Db) -> Result<Vec<Uuid>> {
    let client = db.client().await?;
    let rows = client
        .query_typed("SELECT farms_with_lots_to_close()", &[])
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + h * 3600, 0).unwrap()
    }

    #[test]
    fn a_grant_is_checked_before_the_database_is_asked() {
        let now = at(0);
        let ok = NewLot::operator(10, "op", "pack");
        let cases: [(&str, NewLot, Option<&str>); 9] = [
            ("valid", ok.clone(), None),
            (
                "zero",
                NewLot {
                    amount: 0,
                    ..ok.clone()
                },
                Some("amount"),
            ),
            (
                "negative",
                NewLot {
                    amount: -5,
                    ..ok.clone()
                },
                Some("amount"),
            ),
            (
                "priority",
                NewLot {
                    priority: 101,
                    ..ok.clone()
                },
                Some("priority"),
            ),
            (
                "expired",
                NewLot {
                    expires_at: Some(at(0)),
                    ..ok.clone()
                },
                Some("expires_at"),
            ),
            (
                "before effective",
                NewLot {
                    effective_at: Some(at(5)),
                    expires_at: Some(at(3)),
                    ..ok.clone()
                },
                Some("expires_at"),
            ),
            (
                "future expiry",
                NewLot {
                    expires_at: Some(at(1)),
                    ..ok.clone()
                },
                None,
            ),
            (
                "no reason",
                NewLot {
                    reason: " ".into(),
                    ..ok.clone()
                },
                Some("reason"),
            ),
            (
                "no key",
                NewLot {
                    idempotency_key: String::new(),
                    ..ok.clone()
                },
                Some("idempotency_key"),
            ),
        ];
        for (name, lot, field) in cases {
            match (lot.validate(now), field) {
                (Ok(()), None) => {}
                (Err(Error::Invalid(fields)), Some(want)) => {
                    assert_eq!(fields[0].field, want, "{name}")
                }
                (got, want) => panic!("{name}: {got:?}, wanted an error on {want:?}"),
            }
        }
    }

    #[test]
    fn a_lots_status_follows_its_dates_and_marks() {
        let now = at(10);
        let cases = [
            ((false, false, at(0), None), LotStatus::Live),
            ((false, false, at(11), None), LotStatus::Pending),
            ((false, false, at(0), Some(at(10))), LotStatus::Expiring),
            ((false, false, at(0), Some(at(11))), LotStatus::Live),
            ((true, false, at(0), None), LotStatus::Revoked),
            ((true, true, at(0), None), LotStatus::Closed),
            ((false, true, at(0), Some(at(1))), LotStatus::Closed),
        ];
        for ((revoked, closed, effective, expires), want) in cases {
            assert_eq!(lot_status(revoked, closed, effective, expires, now), want);
        }
    }

    #[test]
    fn names_round_trip() {
        for c in [LotCategory::Paid, LotCategory::Promotional] {
            assert_eq!(LotCategory::parse(c.as_str()), Some(c));
        }
        for s in [
            LotSource::Operator,
            LotSource::Payment,
            LotSource::Promotion,
        ] {
            assert_eq!(LotSource::parse(s.as_str()), Some(s));
        }
        assert_eq!(LotCategory::parse("free"), None);
    }
}
