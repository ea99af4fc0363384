//! One metered run for every metered feature: chat turns, document embedding, reembed sweep
//! batches, memory distillation.
//!
//! A run holds credits **per model call**, not for the whole run. Before each call it knows a
//! guaranteed bound on that call (input tokens measured from the request as built, output
//! tokens capped by `maxTokens`) and what the calls before it really used; it makes sure its
//! hold covers `cost(used + bound)`, topping up by the difference (one conditional statement,
//! [`super::top_up_committed`]) only when the hold falls short. So the hold is never more than
//! one call's bound above what the run has used, which is what lets a farm with a small
//! balance chat, and ten workers chatting at once lock little.
//!
//! When the farm cannot pay for the next call at its full output cap, the call is shrunk to
//! the largest output cap the balance pays for, down to the caller's minimum; below that the
//! caller gets [`Error::InsufficientCredits`] with the minimum needed (the run keeps what it
//! did: a chat turn ends early, a distill batch stops). Because every call is covered before it
//! is made, the charge (`cost(used)`, rounded up once on the total) never exceeds the hold;
//! if a provider reports more than the bound, the charge is capped at the hold and a warning
//! logged. Settling returns `held - charged`; the database refuses anything else (migration
//! 0060), and reconcile expires an abandoned run's whole hold.
//!
//! Why not one hold of the run's worst case: that is the caps multiplied (calls x input cap x
//! output cap), 72x what a typical turn costs, and it refuses farms that could pay for the
//! turn. Why not charge after the call: the balance could go negative under concurrency.

use std::time::Instant;

use uuid::Uuid;

use super::{
    Feature, ModelPrice, NewRun, Settled, Settlement, reserve_credits_committed, settle_run,
    top_up_committed,
};
use crate::{
    db::{Db, TenantTx},
    error::{Error, Result},
    model::Usage,
};

/// What the next model call may consume: its input bound and the range of output caps the
/// caller accepts (`min_output_tokens..=max_output_tokens`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextCall {
    pub input_tokens: u64,
    pub max_output_tokens: u64,
    pub min_output_tokens: u64,
}

impl NextCall {
    /// A call whose output is not metered (an embedding): exactly `input_tokens`.
    pub fn input_only(input_tokens: u64) -> NextCall {
        NextCall {
            input_tokens,
            max_output_tokens: 0,
            min_output_tokens: 0,
        }
    }
}

/// What a new run is.
#[derive(Debug, Clone, Copy)]
pub struct RunSpec<'a> {
    pub feature: Feature,
    pub model: &'a str,
    pub price: ModelPrice,
    pub user_id: Option<&'a str>,
    pub request_summary: Option<&'a str>,
}

/// How a run ended, for [`MeteredRun::settle`].
#[derive(Debug, Clone, Copy)]
pub enum RunEnd<'a> {
    Succeeded { summary: Option<&'a str> },
    Failed { error: &'a str },
}

// ---------------------------------------------------------------- the arithmetic (pure)

/// Thousandths of a credit: a run adds up the exact price of every call in these and rounds up
/// to whole credits once, on the total ([`super::cost`] is the one-call case).
pub fn millicredits(price: ModelPrice, input: u64, output: u64) -> i128 {
    input as i128 * price.input_per_1k as i128 + output as i128 * price.output_per_1k as i128
}

fn whole_credits(millis: i128) -> i64 {
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

// ---------------------------------------------------------------- refused holds

/// What the refused holds of one attempt to hold said: the farm's spendable balance and the
/// member's room in their budget window (cap - spent - held). The smaller is what the next
/// attempt may take; when not even the minimum call fits, the error is the one that binds.
#[derive(Debug, Default)]
struct Refusals {
    balance: Option<i64>,
    budget: Option<(i64, Error)>,
}

impl Refusals {
    fn available(&self) -> Option<i64> {
        let room = self.budget.as_ref().map(|(room, _)| *room);
        match (self.balance, room) {
            (Some(b), Some(r)) => Some(b.min(r)),
            (b, r) => b.or(r),
        }
    }

    /// Keeps what a refusal says; any other error is passed on.
    fn note(&mut self, e: Error) -> Result<()> {
        match e {
            Error::InsufficientCredits { balance, .. } => self.balance = Some(balance),
            e @ Error::MemberBudgetExceeded {
                cap, spent, held, ..
            } => {
                self.budget = Some(((cap - spent - held).max(0), e));
            }
            e => return Err(e),
        }
        Ok(())
    }

    /// The error when a call needing `needed` more credits cannot be held for: the member's
    /// budget when it is what binds, else the farm's credits.
    fn short(self, needed: i64) -> Error {
        match self.budget {
            Some((
                room,
                Error::MemberBudgetExceeded {
                    window,
                    cap,
                    spent,
                    held,
                    resets_at,
                    ..
                },
            )) if self.balance.is_none_or(|b| room <= b) => Error::MemberBudgetExceeded {
                window,
                cap,
                spent,
                held,
                needed,
                resets_at,
            },
            _ => Error::InsufficientCredits {
                needed,
                balance: self.balance.unwrap_or(0),
            },
        }
    }
}

// ---------------------------------------------------------------- the run

/// A run of one feature on one farm, holding credits call by call. See the module doc.
#[derive(Debug)]
pub struct MeteredRun {
    farm_id: Uuid,
    run_id: Uuid,
    price: ModelPrice,
    held: i64,
    /// What the calls so far cost, in millicredits (each at its own price).
    spent: i128,
    used: Usage,
    calls: u32,
    holds: u32,
    /// The bound held for the call about to be made (input tokens, output cap), checked
    /// against what the provider reports for it.
    pending: Option<(u64, u64)>,
    /// Calls whose reported usage exceeded the bound held for them (a provider that
    /// miscounts); 0 in every test and every measured run.
    over_bound: u32,
    started: Instant,
}

/// A hold is retried this many times when the balance moved under it (other runs).
const ATTEMPTS: usize = 3;

impl MeteredRun {
    /// Opens a run holding enough for its first call, in `tx` (committed with the hold, one
    /// round trip) or, when the farm cannot pay the full cap, in a new transaction with the
    /// call shrunk to fit. Returns the run and the output cap held for.
    pub async fn open(
        db: &Db,
        tx: TenantTx,
        spec: RunSpec<'_>,
        first: NextCall,
    ) -> Result<(MeteredRun, u64)> {
        let farm_id = tx.farm_id();
        let mut tx = Some(tx);
        let mut refusals = Refusals::default();
        for _ in 0..ATTEMPTS {
            let (output_tokens, credits) =
                match plan_call(spec.price, 0, 0, refusals.available(), first) {
                    Plan::Call {
                        output_tokens,
                        top_up,
                    } => (output_tokens, top_up.max(1)),
                    Plan::Short { needed } => return Err(refusals.short(needed)),
                };
            let tx = match tx.take() {
                Some(tx) => tx,
                None => db.tenant(farm_id).await?,
            };
            let run = NewRun {
                feature: spec.feature,
                model: spec.model,
                user_id: spec.user_id,
                credits,
                request_summary: spec.request_summary,
            };
            match reserve_credits_committed(tx, &run).await {
                Ok(r) => {
                    let run = MeteredRun {
                        farm_id,
                        run_id: r.run_id,
                        price: spec.price,
                        held: r.credits_reserved,
                        spent: 0,
                        used: Usage::default(),
                        calls: 0,
                        holds: 1,
                        pending: Some((first.input_tokens, output_tokens)),
                        over_bound: 0,
                        started: Instant::now(),
                    };
                    return Ok((run, output_tokens));
                }
                Err(e) => refusals.note(e)?,
            }
        }
        Err(refusals.short(credits_for(
            spec.price,
            0,
            first.input_tokens,
            first.min_output_tokens,
        )))
    }

    /// Makes sure the hold covers the next call, topping up when it falls short; returns the
    /// output cap held for. [`Error::InsufficientCredits`] (the farm) or
    /// [`Error::MemberBudgetExceeded`] (the member's budget): not even the minimum call fits
    /// (the run keeps what it did; the caller ends it).
    pub async fn hold_for(&mut self, db: &Db, next: NextCall) -> Result<u64> {
        self.hold_for_priced(db, self.price, next).await
    }

    /// [`Self::hold_for`] a call of another model than the run's (distill embeds what its
    /// extractor found).
    pub async fn hold_for_priced(
        &mut self,
        db: &Db,
        price: ModelPrice,
        next: NextCall,
    ) -> Result<u64> {
        let mut refusals = Refusals::default();
        for _ in 0..ATTEMPTS {
            match plan_call(price, self.spent, self.held, refusals.available(), next) {
                Plan::Call {
                    output_tokens,
                    top_up: 0,
                } => {
                    self.pending = Some((next.input_tokens, output_tokens));
                    return Ok(output_tokens);
                }
                Plan::Call {
                    output_tokens,
                    top_up,
                } => match top_up_committed(db.tenant(self.farm_id).await?, self.run_id, top_up)
                    .await
                {
                    Ok(h) => {
                        self.held = h.held;
                        self.holds += 1;
                        self.pending = Some((next.input_tokens, output_tokens));
                        return Ok(output_tokens);
                    }
                    Err(e) => refusals.note(e)?,
                },
                Plan::Short { needed } => return Err(refusals.short(needed)),
            }
        }
        Err(refusals.short(
            credits_for(price, self.spent, next.input_tokens, next.min_output_tokens) - self.held,
        ))
    }

    /// Adds what a call of the run's model reported.
    pub fn record(&mut self, usage: Usage) {
        self.record_priced(self.price, usage);
    }

    /// Adds what a call of another model reported.
    pub fn record_priced(&mut self, price: ModelPrice, usage: Usage) {
        if let Some((input, output)) = self.pending.take()
            && (usage.input_tokens > input || usage.output_tokens > output)
        {
            self.over_bound += 1;
            tracing::warn!(run_id = %self.run_id, input, output, reported_input = usage.input_tokens,
                reported_output = usage.output_tokens, "a call reported more than the bound held for it");
        }
        self.spent += millicredits(price, usage.input_tokens, usage.output_tokens);
        self.used.input_tokens = self.used.input_tokens.saturating_add(usage.input_tokens);
        self.used.output_tokens = self.used.output_tokens.saturating_add(usage.output_tokens);
        self.calls += 1;
    }

    pub fn run_id(&self) -> Uuid {
        self.run_id
    }
    pub fn farm_id(&self) -> Uuid {
        self.farm_id
    }
    pub fn held(&self) -> i64 {
        self.held
    }
    pub fn used(&self) -> Usage {
        self.used
    }
    pub fn calls(&self) -> u32 {
        self.calls
    }
    /// Hold legs so far (the opening one included).
    pub fn holds(&self) -> u32 {
        self.holds
    }
    /// Calls whose reported usage exceeded the bound held for them (see the module doc: the
    /// charge is then capped at the hold).
    pub fn calls_over_bound(&self) -> u32 {
        self.over_bound
    }

    /// What the run costs so far, never above its hold.
    pub fn charge(&self) -> i64 {
        let actual = whole_credits(self.spent);
        if actual > self.held {
            tracing::warn!(run_id = %self.run_id, actual, held = self.held,
                "reported usage above the hold: charge capped");
        }
        actual.min(self.held)
    }

    /// The settlement of this run (tokens and latency clamped into the columns' range).
    pub fn settlement<'a>(&self, end: RunEnd<'a>) -> Settlement<'a> {
        let clamp = |n: u64| i32::try_from(n).unwrap_or(i32::MAX);
        let (failed, response_summary, error) = match end {
            RunEnd::Succeeded { summary } => (false, summary, None),
            RunEnd::Failed { error } => (true, None, Some(error)),
        };
        Settlement {
            failed,
            credits_charged: self.charge(),
            input_tokens: clamp(self.used.input_tokens),
            output_tokens: clamp(self.used.output_tokens),
            latency_ms: i32::try_from(self.started.elapsed().as_millis()).unwrap_or(i32::MAX),
            response_summary,
            error,
        }
    }

    /// Settles in `tx` (the caller commits, with whatever else the run wrote). `None`: it was
    /// already closed.
    pub async fn settle(&self, tx: &TenantTx, end: RunEnd<'_>) -> Result<Option<Settled>> {
        settle_run(tx, self.run_id, &self.settlement(end)).await
    }

    /// Settles as failed in its own transaction. If even that fails the hold stays open and
    /// reconcile-credits expires it in full.
    pub async fn settle_failed(&self, db: &Db, error: &str) -> Result<()> {
        let tx = db.tenant(self.farm_id).await?;
        self.settle(&tx, RunEnd::Failed { error }).await?;
        tx.commit().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: ModelPrice = ModelPrice {
        input_per_1k: 2,
        output_per_1k: 8,
    };

    fn used(i: u64, o: u64) -> i128 {
        millicredits(P, i, o)
    }

    fn next(input: u64, max: u64, min: u64) -> NextCall {
        NextCall {
            input_tokens: input,
            max_output_tokens: max,
            min_output_tokens: min,
        }
    }

    #[test]
    fn the_largest_output_is_the_most_the_budget_pays_for() {
        let cases = [
            // (used, input, budget, expected)
            (used(0, 0), 1000, 10, Some(1000)), // 2 + 8
            (used(0, 0), 1000, 9, Some(875)),   // 2 + 7
            (used(0, 0), 1000, 2, Some(0)),
            (used(0, 0), 1000, 1, None),
            (used(500, 125), 500, 10, Some(875)), // the used output counts against it
            (used(0, 0), 0, 0, None),
        ];
        for (u, input, budget, expected) in cases {
            let got = largest_output(P, u, input, budget);
            assert_eq!(got, expected, "{u} {input} {budget}");
            if let Some(out) = got {
                assert!(credits_for(P, u, input, out) <= budget.max(1));
                assert!(credits_for(P, u, input, out + 1) > budget || P.output_per_1k == 0);
            }
        }
        let free_output = ModelPrice {
            input_per_1k: 1,
            output_per_1k: 0,
        };
        assert_eq!(
            largest_output(free_output, used(0, 0), 10, 1),
            Some(u64::MAX)
        );
    }

    #[test]
    fn a_call_is_planned_to_fit_the_hold_and_the_balance() {
        let cases = [
            // (used, held, available, next, expected)
            (
                used(0, 0),
                0,
                None,
                next(1000, 1000, 100),
                Plan::Call {
                    output_tokens: 1000,
                    top_up: 10,
                },
            ),
            (
                used(0, 0),
                20,
                None,
                next(1000, 1000, 100),
                Plan::Call {
                    output_tokens: 1000,
                    top_up: 0,
                },
            ),
            (
                used(0, 0),
                4,
                Some(4),
                next(1000, 1000, 100),
                Plan::Call {
                    output_tokens: 750,
                    top_up: 4,
                },
            ),
            (
                used(0, 0),
                0,
                Some(2),
                next(1000, 1000, 100),
                Plan::Short { needed: 3 },
            ),
            (
                used(1000, 100),
                4,
                Some(0),
                next(1000, 1000, 100),
                Plan::Short { needed: 2 },
            ),
            (
                used(1000, 100),
                6,
                Some(100),
                next(1000, 1000, 100),
                Plan::Call {
                    output_tokens: 1000,
                    top_up: 7,
                },
            ),
            (
                used(0, 0),
                0,
                Some(50),
                next(1000, 100, 500),
                Plan::Call {
                    output_tokens: 100,
                    top_up: 3,
                },
            ),
        ];
        for (u, held, available, n, expected) in cases {
            let plan = plan_call(P, u, held, available, n);
            assert_eq!(
                plan, expected,
                "{u} held {held} available {available:?} {n:?}"
            );
            if let Plan::Call {
                output_tokens,
                top_up,
            } = plan
            {
                assert!(credits_for(P, u, n.input_tokens, output_tokens) <= held + top_up);
                assert!(top_up <= available.unwrap_or(i64::MAX));
            }
        }
    }
}
