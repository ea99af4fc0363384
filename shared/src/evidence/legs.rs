//! A run's ledger legs and how they match its amounts (pure).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::status::RunStatus;

/// A run's ledger legs, matched to it by `ai_run_id`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MatchedLegs {
    /// Held for the run: its `reserve` (hold) legs added up, as a positive amount. A run holds
    /// before each model call that needs more, so it may have several.
    pub reserved: i64,
    /// How many hold legs it has (at least 1).
    pub holds: i64,
    /// What the run actually cost: reserved minus the settle refund (0 if expired or open).
    pub charged: i64,
    /// Given back at settlement (the `settle` leg).
    pub refunded: i64,
    /// Given back because the run never settled (the `expire` leg).
    pub expired: i64,
    /// Still held: reserved, not yet settled nor expired.
    pub open: i64,
    /// The legs agree with the run row (reserved and charged amounts, closed iff finished).
    pub consistent: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leg {
    pub id: i64,
    pub entry_type: String,
    pub delta: i64,
    pub balance_after: i64,
    pub actor: Option<String>,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Matches legs to amounts (pure). `run_reserved`/`run_charged`/`run_status` are the run row's.
pub fn match_legs(
    legs: &[Leg],
    run_reserved: i64,
    run_charged: Option<i64>,
    run_status: RunStatus,
) -> MatchedLegs {
    let sum = |t: &str| -> i64 {
        legs.iter()
            .filter(|l| l.entry_type == t)
            .map(|l| l.delta)
            .sum()
    };
    let count = |t: &str| legs.iter().filter(|l| l.entry_type == t).count();
    let reserved = -sum("reserve");
    let refunded = sum("settle");
    let expired = sum("expire");
    let closed = count("settle") + count("expire");
    let charged = if count("settle") == 1 {
        reserved - refunded
    } else {
        0
    };
    let open = if closed == 0 { reserved } else { 0 };
    let consistent = count("reserve") >= 1
        && closed <= 1
        && legs
            .iter()
            .all(|l| ["reserve", "settle", "expire"].contains(&l.entry_type.as_str()))
        && reserved == run_reserved
        && match run_status {
            RunStatus::Reserved => closed == 0 && run_charged.is_none(),
            RunStatus::Expired => {
                count("expire") == 1 && expired == reserved && run_charged == Some(0)
            }
            _ => count("settle") == 1 && run_charged == Some(charged),
        };
    MatchedLegs {
        reserved,
        holds: count("reserve") as i64,
        charged,
        refunded,
        expired,
        open,
        consistent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leg(entry_type: &str, delta: i64) -> Leg {
        Leg {
            id: 1,
            entry_type: entry_type.into(),
            delta,
            balance_after: 0,
            actor: None,
            reason: None,
            created_at: Utc::now(),
        }
    }

    type LegCase = (
        Vec<Leg>,
        i64,
        Option<i64>,
        RunStatus,
        (i64, i64, i64, i64, i64, bool),
    );

    #[test]
    fn legs_match_to_amounts() {
        // (legs, run reserved, run charged, run status) -> (reserved, charged, refunded, expired, open, consistent)
        let cases: Vec<LegCase> = vec![
            (
                vec![leg("reserve", -10), leg("settle", 7)],
                10,
                Some(3),
                RunStatus::Succeeded,
                (10, 3, 7, 0, 0, true),
            ),
            (
                vec![leg("reserve", -10), leg("settle", 10)],
                10,
                Some(0),
                RunStatus::Failed,
                (10, 0, 10, 0, 0, true),
            ),
            (
                vec![leg("reserve", -10), leg("expire", 10)],
                10,
                Some(0),
                RunStatus::Expired,
                (10, 0, 0, 10, 0, true),
            ),
            (
                vec![leg("reserve", -10)],
                10,
                None,
                RunStatus::Reserved,
                (10, 0, 0, 0, 10, true),
            ),
            // the run says 4 was charged, the ledger says 3: flagged
            (
                vec![leg("reserve", -10), leg("settle", 7)],
                10,
                Some(4),
                RunStatus::Succeeded,
                (10, 3, 7, 0, 0, false),
            ),
            // no legs at all for a run: flagged
            (
                vec![],
                10,
                None,
                RunStatus::Reserved,
                (0, 0, 0, 0, 0, false),
            ),
        ];
        for (legs, reserved, charged, status, expected) in cases {
            let m = match_legs(&legs, reserved, charged, status);
            assert_eq!(
                (
                    m.reserved,
                    m.charged,
                    m.refunded,
                    m.expired,
                    m.open,
                    m.consistent
                ),
                expected,
                "{status} {legs:?}"
            );
        }
    }
}
