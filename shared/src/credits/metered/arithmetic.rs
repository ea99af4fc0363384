//! The arithmetic of a metered run (pure): millicredits, whole credits, the largest output a
//! budget pays for, and the plan for the next call.

use super::NextCall;
use crate::credits::ModelPrice;

/// Thousandths of a credit: a run adds up the exact price of every call in these and rounds up
/// to whole credits once, on the total ([`cost`](crate::credits::cost) is the one-call case).
pub fn millicredits(price: ModelPrice, input: u64, output: u64) -> i128 {
    input as i128 * price.input_per_1k as i128 + output as i128 * price.output_per_1k as i128
}

pub(super) fn whole_credits(millis: i128) -> i64 {
    i64::try_from((millis + 999).div_euclid(1000)).unwrap_or(i64::MAX)
}

/// Credits a run that has spent `spent` millicredits must hold in total to make one more call
/// of `input` tokens in and at most `output` out.
pub fn credits_for(price: ModelPrice, spent: i128, input: u64, output: u64) -> i64 {
    whole_credits(spent + millicredits(price, input, output)).max(1)
}

/// The largest output cap of the next call for which [`credits_for`] stays within `budget`
/// credits; `None` when not even its input fits.
pub fn largest_output(price: ModelPrice, spent: i128, input: u64, budget: i64) -> Option<u64> {
    let room = budget as i128 * 1000 - spent - millicredits(price, input, 0);
    if room < 0 || budget < 1 {
        return None;
    }
    if price.output_per_1k == 0 {
        return Some(u64::MAX);
    }
    Some(u64::try_from(room / price.output_per_1k as i128).unwrap_or(u64::MAX))
}

/// What to do before the next call (pure): `held` is what the run holds, `available` the
/// farm's balance when known (after a refused hold).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Call with this output cap; hold `top_up` more first (0: the hold already covers it).
    Call { output_tokens: u64, top_up: i64 },
    /// Not even the minimum call fits: the hold would have to be `needed` more.
    Short { needed: i64 },
}

pub fn plan_call(
    price: ModelPrice,
    spent: i128,
    held: i64,
    available: Option<i64>,
    next: NextCall,
) -> Plan {
    let need = |out| (credits_for(price, spent, next.input_tokens, out) - held).max(0);
    let min_out = next.min_output_tokens.min(next.max_output_tokens);
    let output_tokens = match available {
        None => next.max_output_tokens,
        Some(balance) => {
            match largest_output(
                price,
                spent,
                next.input_tokens,
                held.saturating_add(balance),
            ) {
                Some(out) if out >= min_out => out.min(next.max_output_tokens),
                _ => {
                    return Plan::Short {
                        needed: need(min_out),
                    };
                }
            }
        }
    };
    if need(output_tokens) > available.unwrap_or(i64::MAX) {
        return Plan::Short {
            needed: need(min_out),
        };
    }
    Plan::Call {
        output_tokens,
        top_up: need(output_tokens),
    }
}
