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

mod arithmetic;
#[cfg(test)]
mod tests;

use arithmetic::whole_credits;
pub use arithmetic::{Plan, credits_for, largest_output, millicredits, plan_call};

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
