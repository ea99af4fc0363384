//! Low-balance alerts (issue 18, part 2): the farm's credit thresholds.
//!
//! `PUT /farms/{farm_id}/alerts` with `{"thresholds": [100, 20]}` (owner, manager): whole
//! credits from 1 to 1,000,000,000, at most 10, from highest to lowest without duplicates (an
//! empty list removes them). The database (migration 0086) writes one outbox row in the
//! transaction whose debit takes the balance from at or above a threshold to below it, and
//! (migration 0087) re-arms the threshold on any ledger leg that leaves the balance back at
//! or above it (a settle's or an expiry's refund, a grant, an adjustment), so each fall below
//! it is one alert; [`crate::credits::alerts`] publishes the rows.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::refusal;
use crate::{
    db::{TenantTx, Type},
    error::{Error, FieldError, Result},
    membership::{self, Role},
};

pub const MAX_THRESHOLDS: usize = 10;
pub const MAX_THRESHOLD: i64 = 1_000_000_000;

/// One threshold and whether it is armed (a debit crossing it will alert).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Threshold {
    pub threshold: i64,
    pub armed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alerts {
    pub thresholds: Vec<Threshold>,
}

/// Reads `{"thresholds": [..]}`: every problem is a 422 naming `thresholds` (or the unknown
/// field).
pub fn parse_thresholds(body: &Value) -> Result<Vec<i64>> {
    let Some(object) = body.as_object() else {
        return Err(Error::invalid("body", "must be a JSON object"));
    };
    let mut errors: Vec<FieldError> = object
        .keys()
        .filter(|k| *k != "thresholds")
        .map(|k| FieldError::new(k.as_str(), "is not an alerts field (thresholds)"))
        .collect();
    let mut out = Vec::new();
    match object.get("thresholds").and_then(Value::as_array) {
        None => errors.push(FieldError::new(
            "thresholds",
            "is required: an array of credit amounts, highest first",
        )),
        Some(items) if items.len() > MAX_THRESHOLDS => errors.push(FieldError::new(
            "thresholds",
            format!("at most {MAX_THRESHOLDS} thresholds"),
        )),
        Some(items) => {
            for v in items {
                match v.as_i64() {
                    Some(n) if (1..=MAX_THRESHOLD).contains(&n) => out.push(n),
                    _ => {
                        errors.push(FieldError::new(
                            "thresholds",
                            format!("a threshold is a whole number of credits from 1 to {MAX_THRESHOLD}, not {v}"),
                        ));
                        break;
                    }
                }
            }
            if errors.is_empty() && out.windows(2).any(|w| w[1] >= w[0]) {
                errors.push(FieldError::new(
                    "thresholds",
                    "must go from highest to lowest without duplicates",
                ));
            }
        }
    }
    super::invalid_if_any(errors)?;
    Ok(out)
}

/// `PUT /farms/{farm_id}/alerts`: 404 for a caller who is not a member, 403 below manager,
/// 422 for bad thresholds; then the thresholds, each with whether it is armed.
#[tracing::instrument(skip(tx, body), fields(farm_id = %tx.farm_id()))]
pub async fn set(tx: &TenantTx, user_id: &str, body: &Value) -> Result<Alerts> {
    membership::require_role(
        tx,
        user_id,
        "set the credit alerts",
        Role::may_manage_members,
    )
    .await?;
    let thresholds = Value::from(parse_thresholds(body)?);
    let row = tx
        .query_one(
            "SELECT set_credit_alerts($1, $2)",
            &[(&user_id, Type::TEXT), (&thresholds, Type::JSONB)],
        )
        .await
        .map_err(refusal)?;
    serde_json::from_value(row.get(0)).map_err(|e| Error::unexpected(e.to_string()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn thresholds_are_whole_sorted_and_distinct() {
        assert_eq!(
            parse_thresholds(&json!({"thresholds": [100, 20]})).unwrap(),
            [100, 20]
        );
        assert_eq!(
            parse_thresholds(&json!({"thresholds": []})).unwrap(),
            Vec::<i64>::new()
        );
        for bad in [
            json!({"thresholds": [20, 100]}),
            json!({"thresholds": [100, 100]}),
            json!({"thresholds": [0]}),
            json!({"thresholds": [-5]}),
            json!({"thresholds": [2.5]}),
            json!({"thresholds": ["100"]}),
            json!({"thresholds": [1_000_000_001]}),
            json!({"thresholds": [11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1]}),
            json!({"thresholds": 100}),
            json!({}),
        ] {
            match parse_thresholds(&bad) {
                Err(Error::Invalid(e)) => assert_eq!(e[0].field, "thresholds", "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        match parse_thresholds(&json!({"thresholds": [1], "limit": 3})) {
            Err(Error::Invalid(e)) => assert_eq!(e[0].field, "limit"),
            other => panic!("{other:?}"),
        }
    }
}
