//! Credits: pricing (here), the holds a run takes before each model call and settles once
//! ([`holds`], [`metered`]: the one metered-run type of every feature), and the operator's
//! side of the ledger with its audits ([`ledger`]); every credit sits in a lot ([`lots`]).
//!
//! Every balance change is ONE call that updates `farms.credit_balance` and appends the
//! ledger leg together; the schema refuses a negative balance, an edited ledger, a balance that
//! disagrees with its ledger, a run that disagrees with its legs, and any ledger write by the
//! application role except through the hold functions (migrations 0002, 0060).

pub mod alerts;
pub mod holds;
pub mod ledger;
pub mod lots;
pub mod metered;

pub use holds::{
    Expired, Held, NewRun, Reservation, Settled, Settlement, expire_reservations, reserve_credits,
    reserve_credits_committed, settle_run, top_up_committed,
};
pub use ledger::*;
pub use lots::{
    ClosedLots, Granted, Lot, LotCategory, LotSource, LotStatus, NewLot, close_lots,
    farms_with_lots_to_close, grant_lot, list_lots,
};
pub use metered::{MeteredRun, NextCall, RunEnd, RunSpec};

use serde::Serialize;

use crate::error::{Error, Result};

// ---------------------------------------------------------------- pricing (pure)

/// Credits per 1,000 tokens. One credit is the smallest unit a farm buys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ModelPrice {
    pub input_per_1k: i64,
    pub output_per_1k: i64,
}

/// The price table. Unknown models cannot be metered and are refused.
pub fn price_for(model: &str) -> Option<ModelPrice> {
    let p = |input_per_1k, output_per_1k| {
        Some(ModelPrice {
            input_per_1k,
            output_per_1k,
        })
    };
    match model {
        "offline-farm-assistant" => p(1, 4),
        "offline-embedder" => p(1, 0),
        "amazon.titan-embed-text-v2:0" => p(1, 0),
        "amazon.nova-micro-v1:0" => p(1, 4),
        "amazon.nova-lite-v1:0" => p(2, 8),
        "amazon.nova-pro-v1:0" => p(8, 32),
        m if m.contains("anthropic.claude-3-5-haiku") || m.contains("anthropic.claude-3-haiku") => {
            p(3, 15)
        }
        m if m.contains("anthropic.claude") && m.contains("sonnet") => p(10, 50),
        _ => None,
    }
}

/// [`price_for`], or the error for a model that cannot be metered.
pub fn priced(model: &str) -> Result<ModelPrice> {
    price_for(model).ok_or_else(|| Error::unexpected(format!("model {model} has no price")))
}

/// The cost of `input` and `output` tokens, rounded up to a whole credit.
pub fn cost(price: ModelPrice, input_tokens: u64, output_tokens: u64) -> i64 {
    let millis = input_tokens as i128 * price.input_per_1k as i128
        + output_tokens as i128 * price.output_per_1k as i128;
    i64::try_from((millis + 999) / 1000).unwrap_or(i64::MAX)
}

// ---------------------------------------------------------------- ledger operations

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    Chat,
    Embed,
    Distill,
    Reembed,
}

impl Feature {
    fn as_str_ref(&self) -> &'static &'static str {
        match self {
            Feature::Chat => &"chat",
            Feature::Embed => &"embed",
            Feature::Distill => &"distill",
            Feature::Reembed => &"reembed",
        }
    }

    pub fn as_str(self) -> &'static str {
        self.as_str_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_rounds_up_to_whole_credits() {
        let price = ModelPrice {
            input_per_1k: 3,
            output_per_1k: 15,
        };
        let cases = [
            (0, 0, 0),
            (1, 0, 1),
            (1000, 0, 3),
            (1001, 0, 4),
            (0, 1000, 15),
            (2000, 500, 14), // 6 + 7.5 -> 14 (rounded once, on the total)
            (u64::MAX, u64::MAX, 332_041_393_326_771_930), // no overflow at the extremes
        ];
        for (input, output, expected) in cases {
            assert_eq!(
                cost(price, input, output),
                expected,
                "{input} in, {output} out"
            );
        }
    }

    #[test]
    fn every_configured_model_has_a_price() {
        for m in [
            "offline-farm-assistant",
            "offline-embedder",
            "amazon.titan-embed-text-v2:0",
            "amazon.nova-lite-v1:0",
            "anthropic.claude-3-5-haiku-20241022-v1:0",
            "us.anthropic.claude-3-5-haiku-20241022-v1:0",
        ] {
            assert!(price_for(m).is_some(), "{m}");
        }
        assert!(price_for("some-new-model").is_none());
    }
}
