//! Member budgets (issue 18): a daily and/or a monthly cap on the credits one member's AI
//! runs may take, set by an owner (any member) or a manager (a worker or a viewer), and what
//! a member has used in the current windows.
//!
//! The caps are enforced by the database in the same statement as every hold (migration
//! 0085: `credit_open_run` and `credit_hold` refuse a hold that would pass a cap, which
//! surfaces as [`Error::MemberBudgetExceeded`], 402 `member_budget_exceeded`). The rule: a
//! run counts in the day and the month (in the farm's time zone) in which it was OPENED, at
//! its hold while open and at its charge once settled; so a turn held before midnight and
//! settled after counts on the day it was opened, and a settle's refund gives the budget back.
//!
//! `PUT /farms/{farm_id}/members/{user_id}/budget` takes `{"daily": N, "monthly": N}`: a
//! field left out keeps its cap, `null` removes it (removing is explicit), at least one must
//! be named. A cap is a whole number of credits from 0 to [`MAX_CAP`] (0: no AI for that
//! member). Changes go through the database's `set_member_budget`, which checks the same
//! rules again and records the act in `farm_events` (`member_budget_set`, before and after).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::refusal;
use crate::{
    db::{TenantTx, Type},
    error::{Error, FieldError, Result},
    membership::{self, Role},
};

/// The largest cap: 1,000,000,000 credits, the most a farm's balance is expected to hold (a
/// larger cap would never bind). The database's `member_budgets` checks the same bound.
pub const MAX_CAP: i64 = 1_000_000_000;

/// A change of one cap: left out (keep), `null` (remove) or a new value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CapChange {
    #[default]
    Keep,
    Remove,
    Set(i64),
}

/// The body of `PUT /farms/{farm_id}/members/{user_id}/budget`, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetChange {
    pub daily: CapChange,
    pub monthly: CapChange,
}

impl BudgetChange {
    /// Reads `{"daily", "monthly"}`; every bad field is a 422 field error, and nothing else
    /// may be in the body.
    pub fn parse(body: &Value) -> Result<BudgetChange> {
        let Some(object) = body.as_object() else {
            return Err(Error::invalid("body", "must be a JSON object"));
        };
        let mut errors = Vec::new();
        for key in object.keys() {
            if key != "daily" && key != "monthly" {
                errors.push(FieldError::new(
                    key.as_str(),
                    "is not a budget field (daily, monthly)",
                ));
            }
        }
        let mut cap = |name: &str| match object.get(name) {
            None => CapChange::Keep,
            Some(Value::Null) => CapChange::Remove,
            Some(v) => match v.as_i64() {
                Some(n) if (0..=MAX_CAP).contains(&n) => CapChange::Set(n),
                _ => {
                    errors.push(FieldError::new(
                        name,
                        format!(
                            "must be a whole number of credits from 0 to {MAX_CAP}, or null to remove the cap"
                        ),
                    ));
                    CapChange::Keep
                }
            },
        };
        let change = BudgetChange {
            daily: cap("daily"),
            monthly: cap("monthly"),
        };
        if !object.contains_key("daily") && !object.contains_key("monthly") {
            errors.push(FieldError::new(
                "body",
                "name a daily or a monthly cap (null removes it)",
            ));
        }
        super::invalid_if_any(errors)?;
        Ok(change)
    }
}

/// A member's caps (`null`: no cap).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    pub user_id: String,
    pub daily: Option<i64>,
    pub monthly: Option<i64>,
}

fn door_args(c: CapChange) -> (bool, Option<i64>) {
    match c {
        CapChange::Keep => (false, None),
        CapChange::Remove => (true, None),
        CapChange::Set(n) => (true, Some(n)),
    }
}

/// `PUT /farms/{farm_id}/members/{user_id}/budget`: 404 for a caller who is not a member,
/// 403 below manager (and for a manager setting an owner's or a manager's budget), 422 for a
/// bad body, 404 `member` for a user who is not a member; then the member's caps.
#[tracing::instrument(skip(tx, body), fields(farm_id = %tx.farm_id()))]
pub async fn set(tx: &TenantTx, user_id: &str, member: &str, body: &Value) -> Result<Budget> {
    membership::require_role(
        tx,
        user_id,
        "set a member's budget",
        Role::may_manage_members,
    )
    .await?;
    let change = BudgetChange::parse(body)?;
    let (set_daily, daily) = door_args(change.daily);
    let (set_monthly, monthly) = door_args(change.monthly);
    let row = tx
        .query_one(
            "SELECT set_member_budget($1, $2, $3, $4, $5, $6)",
            &[
                (&user_id, Type::TEXT),
                (&member, Type::TEXT),
                (&set_daily, Type::BOOL),
                (&daily, Type::INT8),
                (&set_monthly, Type::BOOL),
                (&monthly, Type::INT8),
            ],
        )
        .await
        .map_err(refusal)?;
    serde_json::from_value(row.get(0)).map_err(|e| Error::unexpected(e.to_string()))
}

/// The operator's change (the CLI, as the owner role, on the tenant farm): the same rules
/// and record as [`set`] (`write_member_budget`, migration 0085), with `actor` recorded as
/// who did it; no farm role is checked (the operator is not a member).
#[tracing::instrument(skip(tx, change), fields(farm_id = %tx.farm_id()))]
pub async fn set_as_operator(
    tx: &TenantTx,
    actor: &str,
    member: &str,
    change: BudgetChange,
) -> Result<Budget> {
    let farm_id = tx.farm_id();
    let (set_daily, daily) = door_args(change.daily);
    let (set_monthly, monthly) = door_args(change.monthly);
    let row = tx
        .query_one(
            "SELECT write_member_budget($1, $2, $3, $4, $5, $6, $7)",
            &[
                (&farm_id, Type::UUID),
                (&actor, Type::TEXT),
                (&member, Type::TEXT),
                (&set_daily, Type::BOOL),
                (&daily, Type::INT8),
                (&set_monthly, Type::BOOL),
                (&monthly, Type::INT8),
            ],
        )
        .await
        .map_err(refusal)?;
    serde_json::from_value(row.get(0)).map_err(|e| Error::unexpected(e.to_string()))
}

/// What one feature's runs count in a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeatureUsage {
    pub feature: String,
    /// Charged by the settled runs opened in the window.
    pub spent: i64,
    /// Held by the open runs opened in the window.
    pub held: i64,
    pub runs: i64,
}

/// One budget window (the current day or month in the farm's time zone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WindowUsage {
    pub starts_at: DateTime<Utc>,
    pub resets_at: DateTime<Utc>,
    /// The member's cap for this window, if any.
    pub cap: Option<i64>,
    pub spent: i64,
    pub held: i64,
    /// `cap - spent - held`, never below 0; none without a cap.
    pub remaining: Option<i64>,
    pub by_feature: Vec<FeatureUsage>,
}

/// `GET /farms/{farm_id}/members/{user_id}/usage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberUsage {
    pub user_id: String,
    /// The zone whose midnight starts a day (the farm's).
    pub time_zone: String,
    pub daily: WindowUsage,
    pub monthly: WindowUsage,
}

const USAGE_SQL: &str = include_str!("usage.sql");

/// `GET /farms/{farm_id}/members/{user_id}/usage`: what the member's runs spent (charged) and
/// hold (open runs) in the current day and month, per feature, with the caps and when each
/// window resets. Owners and managers read any member's; a worker or a viewer their own (403
/// otherwise). 404 `member` for a user who is not a member.
#[tracing::instrument(skip(tx), fields(farm_id = %tx.farm_id()))]
pub async fn usage(tx: &TenantTx, user_id: &str, member: &str) -> Result<MemberUsage> {
    let role = membership::member_role(tx, user_id).await?;
    if member != user_id && !role.may_manage_members() {
        return Err(Error::Forbidden(format!(
            "a {} may read only their own usage",
            role.as_str()
        )));
    }
    let farm_id = tx.farm_id();
    let row = tx
        .query_opt(
            "SELECT f.time_zone, b.daily_cap, b.monthly_cap
               FROM farm_members m JOIN farms f ON f.id = m.farm_id
               LEFT JOIN member_budgets b ON b.farm_id = m.farm_id AND b.user_id = m.user_id
              WHERE m.farm_id = $1 AND m.user_id = $2",
            &[(&farm_id, Type::UUID), (&member, Type::TEXT)],
        )
        .await?
        .ok_or(Error::NotFound("member"))?;
    let (time_zone, daily_cap, monthly_cap): (String, Option<i64>, Option<i64>) =
        (row.get(0), row.get(1), row.get(2));
    let rows = tx
        .query(USAGE_SQL, &[(&farm_id, Type::UUID), (&member, Type::TEXT)])
        .await?;
    let mut windows: BTreeMap<String, WindowUsage> = BTreeMap::new();
    for r in &rows {
        let unit: String = r.get(0);
        let cap = if unit == "daily" {
            daily_cap
        } else {
            monthly_cap
        };
        let w = windows.entry(unit).or_insert_with(|| WindowUsage {
            starts_at: r.get(1),
            resets_at: r.get(2),
            cap,
            spent: 0,
            held: 0,
            remaining: None,
            by_feature: Vec::new(),
        });
        if let Some(feature) = r.get::<_, Option<String>>(3) {
            let (spent, held): (i64, i64) = (r.get(4), r.get(5));
            w.spent += spent;
            w.held += held;
            w.by_feature.push(FeatureUsage {
                feature,
                spent,
                held,
                runs: r.get(6),
            });
        }
    }
    let mut take = |unit: &str| -> Result<WindowUsage> {
        let mut w = windows
            .remove(unit)
            .ok_or_else(|| Error::unexpected("a budget window is missing"))?;
        w.remaining = w.cap.map(|c| (c - w.spent - w.held).max(0));
        Ok(w)
    };
    Ok(MemberUsage {
        user_id: member.to_string(),
        time_zone,
        daily: take("daily")?,
        monthly: take("monthly")?,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_budget_change_names_what_it_changes() {
        let ok = [
            (json!({"daily": 50}), CapChange::Set(50), CapChange::Keep),
            (json!({"monthly": 0}), CapChange::Keep, CapChange::Set(0)),
            (
                json!({"daily": null, "monthly": 1_000_000_000}),
                CapChange::Remove,
                CapChange::Set(MAX_CAP),
            ),
        ];
        for (body, daily, monthly) in ok {
            assert_eq!(
                BudgetChange::parse(&body).unwrap(),
                BudgetChange { daily, monthly },
                "{body}"
            );
        }
    }

    #[test]
    fn bad_caps_are_field_errors() {
        let bad = [
            (json!({"daily": -1}), vec!["daily"]),
            (json!({"daily": 1.5}), vec!["daily"]),
            (json!({"daily": 5.0}), vec!["daily"]),
            (json!({"monthly": "10"}), vec!["monthly"]),
            (json!({"monthly": 1_000_000_001}), vec!["monthly"]),
            (
                json!({"daily": -1, "monthly": true}),
                vec!["daily", "monthly"],
            ),
            (json!({}), vec!["body"]),
            (json!({"weekly": 3}), vec!["weekly", "body"]),
            (json!([1]), vec!["body"]),
        ];
        for (body, fields) in bad {
            match BudgetChange::parse(&body) {
                Err(Error::Invalid(errors)) => assert_eq!(
                    errors.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(),
                    fields,
                    "{body}"
                ),
                other => panic!("{body}: {other:?}"),
            }
        }
    }
}
