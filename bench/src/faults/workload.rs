//! The workers: each draws operations from its own seeded generator and runs them through the
//! shared crate's functions (metered runs, settles, grants, reconcile, drafts), recording what
//! it saw. No retries: a failure is recorded as it came.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use chrono::Utc;
use farmops::{
    Error,
    credits::{
        self, Feature, LotCategory, LotSource, MeteredRun, NewLot, NextCall, RunEnd, RunSpec,
    },
    db::{Db, sqlstate},
    model::Usage,
    reconcile,
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use uuid::Uuid;

use super::history::{Event, Op, Outcome};

pub const MODEL: &str = "offline-farm-assistant";
/// Members whose holds count against a daily budget ([`super::setup`] sets it).
pub const BUDGET_MEMBERS: [&str; 2] = ["faults-member-0", "faults-member-1"];
pub const USER: &str = "faults-user";

/// What every worker shares.
pub struct Ctx {
    /// The application role's pool (every connection named for the killer).
    pub app: Db,
    /// The same role with a short `statement_timeout`: a statement behind a locked farm row
    /// times out (57014).
    pub slow: Db,
    /// The owner role's pool (grants).
    pub owner: Db,
    pub farms: Vec<Uuid>,
    pub seed: u64,
    /// Operations to record (all workers together).
    pub total: usize,
    /// Operations recorded so far.
    pub done: AtomicUsize,
    /// Runs older than this are expired by the reconcile passes during the run.
    pub max_run: Duration,
    /// The latest expiry of a granted lot, in Unix milliseconds.
    pub latest_expiry: AtomicI64,
    /// Errors the clients met, by kind (statement timeouts, connections lost).
    pub met: Mutex<std::collections::BTreeMap<String, u64>>,
}

impl Ctx {
    pub(super) fn met(&self, e: &Error) {
        let kind = match (e, sqlstate(e).as_deref()) {
            (_, Some("57014")) => "statement timeout (57014) met by a client",
            (Error::DatabaseUnavailable(_), _) => "connection lost or refused, met by a client",
            _ => return,
        };
        *self.met.lock().unwrap().entry(kind.into()).or_default() += 1;
    }
}

/// The outcome of an error at or after the COMMIT was sent: the connection lost (or a
/// statement timeout, which could have struck the COMMIT itself) leaves it unknown; any other
/// refusal by the server rolled the whole transaction back.
pub fn commit_outcome(e: &Error) -> Outcome {
    match e {
        Error::InsufficientCredits { .. }
        | Error::MemberBudgetExceeded { .. }
        | Error::Conflict { .. } => Outcome::Refused,
        Error::DatabaseUnavailable(_) => Outcome::Unknown,
        _ if sqlstate(e).as_deref() == Some("57014") => Outcome::Unknown,
        Error::Unexpected(_) if sqlstate(e).is_some() => Outcome::Failed,
        Error::Unexpected(_) => Outcome::Unknown,
        _ => Outcome::Failed,
    }
}

struct Live {
    farm: Uuid,
    run: MeteredRun,
    /// The call held for and not yet reported: (input tokens, output cap).
    pending: Option<(u64, u64)>,
}

impl Live {
    /// Reports the pending call's usage (within its bound, as a real provider does).
    fn report(&mut self, rng: &mut StdRng) {
        if let Some((input, output)) = self.pending.take() {
            self.run.record(Usage {
                input_tokens: input,
                output_tokens: rng.random_range(0..=output),
            });
        }
    }
}

fn next_call(rng: &mut StdRng) -> NextCall {
    NextCall {
        input_tokens: rng.random_range(300..4000),
        max_output_tokens: 1000,
        min_output_tokens: 100,
    }
}

/// One worker: operations until the shared count reaches the total.
pub async fn worker(ctx: Arc<Ctx>, w: usize) -> Vec<Event> {
    let mut rng = StdRng::seed_from_u64(ctx.seed.wrapping_mul(0x9E37_79B9).wrapping_add(w as u64));
    let mut live: Vec<Live> = Vec::new();
    let mut events = Vec::new();
    while ctx.done.load(Ordering::Relaxed) < ctx.total {
        let farm = ctx.farms[rng.random_range(0..ctx.farms.len())];
        let db = if rng.random_bool(0.1) {
            &ctx.slow
        } else {
            &ctx.app
        };
        let roll = rng.random_range(0..100);
        let n = events.len();
        let tag = format!("faults-{}-{w}-{n}", ctx.seed);
        if roll < 25 || (roll < 64 && live.is_empty()) {
            let member = roll % 4 == 0;
            let (op, run) = open(&ctx, db, farm, tag, member, &mut rng).await;
            live.extend(run);
            events.push(op);
        } else if roll < 40 {
            let i = rng.random_range(0..live.len());
            events.push(top_up(&ctx, db, &mut live[i], &mut rng).await);
        } else if roll < 60 {
            let l = live.swap_remove(rng.random_range(0..live.len()));
            events.push(settle(&ctx, db, l, roll < 54, &mut rng).await);
        } else if roll < 64 {
            let l = live.swap_remove(rng.random_range(0..live.len()));
            events.push(abandon(&l));
        } else if roll < 76 {
            events.extend(grant(&ctx, farm, tag, roll >= 71, &mut rng).await);
        } else if roll < 79 {
            let outcome = match reconcile_pass(&ctx).await {
                Ok(()) => Outcome::Committed,
                Err(_) => Outcome::Failed,
            };
            events.push(Event {
                farm,
                op: Op::Reconcile,
                outcome,
            });
        } else {
            events.extend(super::races::draft_race(&ctx, db, farm, tag).await);
        }
        ctx.done.fetch_add(events.len() - n, Ordering::Relaxed);
        if events[n..].iter().any(|e| e.outcome == Outcome::Unknown) {
            tokio::time::sleep(Duration::from_millis(5)).await; // the database may be restarting
        }
    }
    events.extend(live.iter().map(abandon)); // the worker stops: its open runs are abandoned
    events
}

async fn open(
    ctx: &Ctx,
    db: &Db,
    farm: Uuid,
    tag: String,
    member: bool,
    rng: &mut StdRng,
) -> (Event, Option<Live>) {
    let user = if member {
        BUDGET_MEMBERS[rng.random_range(0..BUDGET_MEMBERS.len())]
    } else {
        USER
    };
    let first = next_call(rng);
    let spec = RunSpec {
        feature: Feature::Chat,
        model: MODEL,
        price: credits::price_for(MODEL).expect("priced"),
        user_id: Some(user),
        request_summary: Some(&tag),
    };
    let (outcome, run) = match db.tenant(farm).await {
        Err(e) => {
            ctx.met(&e);
            (Outcome::Failed, None)
        }
        Ok(tx) => match MeteredRun::open(db, tx, spec, first).await {
            Ok((run, out)) => (Outcome::Committed, Some((run, out))),
            Err(e) => {
                ctx.met(&e);
                (commit_outcome(&e), None)
            }
        },
    };
    let op = Op::Open {
        tag,
        run: run.as_ref().map(|(r, _)| r.run_id()),
        held: run.as_ref().map_or(0, |(r, _)| r.held()),
        member,
    };
    let live = run.map(|(run, out)| Live {
        farm,
        run,
        pending: Some((first.input_tokens, out)),
    });
    (Event { farm, op, outcome }, live)
}

async fn top_up(ctx: &Ctx, db: &Db, l: &mut Live, rng: &mut StdRng) -> Event {
    l.report(rng);
    let next = next_call(rng);
    let outcome = match l.run.hold_for(db, next).await {
        Ok(out) => {
            l.pending = Some((next.input_tokens, out));
            Outcome::Committed
        }
        Err(e) => {
            ctx.met(&e);
            commit_outcome(&e)
        }
    };
    Event {
        farm: l.farm,
        op: Op::TopUp {
            run: l.run.run_id(),
            held: l.run.held(),
        },
        outcome,
    }
}

async fn settle(ctx: &Ctx, db: &Db, mut l: Live, ok: bool, rng: &mut StdRng) -> Event {
    if ok {
        l.report(rng);
    }
    let end = if ok {
        RunEnd::Succeeded { summary: None }
    } else {
        RunEnd::Failed {
            error: "faults: the model failed",
        }
    };
    let charge = l.run.charge();
    let mut closed_already = false;
    let outcome = match db.tenant(l.farm).await {
        Err(e) => {
            ctx.met(&e);
            Outcome::Failed
        }
        Ok(tx) => match l.run.settle(&tx, end).await {
            Err(e) => {
                ctx.met(&e);
                Outcome::Failed // the COMMIT was never sent: rolled back
            }
            Ok(settled) => {
                closed_already = settled.is_none();
                // a window between the statement and its COMMIT for the killer
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..3))).await;
                match tx.commit().await {
                    Ok(()) => Outcome::Committed,
                    Err(e) => {
                        ctx.met(&e);
                        commit_outcome(&e)
                    }
                }
            }
        },
    };
    Event {
        farm: l.farm,
        op: Op::Settle {
            run: l.run.run_id(),
            failed: !ok,
            charge,
            closed_already,
        },
        outcome,
    }
}

fn abandon(l: &Live) -> Event {
    Event {
        farm: l.farm,
        op: Op::Abandon {
            run: l.run.run_id(),
        },
        outcome: Outcome::Committed,
    }
}

/// A grant keyed `key`, delivered once or (`duplicate`) two or three times at once.
async fn grant(
    ctx: &Ctx,
    farm: Uuid,
    key: String,
    duplicate: bool,
    rng: &mut StdRng,
) -> Vec<Event> {
    let expires = rng.random_bool(0.4);
    let expires_at =
        expires.then(|| Utc::now() + chrono::Duration::milliseconds(rng.random_range(1500..4000)));
    if let Some(at) = expires_at {
        ctx.latest_expiry
            .fetch_max(at.timestamp_millis(), Ordering::Relaxed);
    }
    let lot = NewLot {
        amount: rng.random_range(1..13),
        category: if expires {
            LotCategory::Promotional
        } else {
            LotCategory::Paid
        },
        expires_at,
        source: LotSource::Payment,
        idempotency_key: key.clone(),
        ..NewLot::operator(1, "faults", "faults bench grant")
    };
    let deliveries = if duplicate {
        rng.random_range(2..=3)
    } else {
        1
    };
    let one = |i: usize| {
        let lot = &lot;
        async move {
            let (outcome, granted) = match ctx.owner.tenant(farm).await {
                Err(e) => {
                    ctx.met(&e);
                    (Outcome::Failed, false)
                }
                Ok(tx) => match credits::grant_lot(&tx, lot).await {
                    Err(e) => {
                        ctx.met(&e);
                        (Outcome::Failed, false)
                    }
                    Ok(g) => match tx.commit().await {
                        Ok(()) => (Outcome::Committed, g.granted),
                        Err(e) => {
                            ctx.met(&e);
                            (commit_outcome(&e), g.granted)
                        }
                    },
                },
            };
            Event {
                farm,
                op: Op::Grant {
                    key: lot.idempotency_key.clone(),
                    amount: lot.amount,
                    expires,
                    duplicate: i > 0,
                    granted,
                },
                outcome,
            }
        }
    };
    futures::future::join_all((0..deliveries).map(one)).await
}

/// Expires holds older than the run's `max_run`, closes expired lots, checkpoints ledgers.
async fn reconcile_pass(ctx: &Ctx) -> farmops::error::Result<()> {
    let max_run = chrono::Duration::from_std(ctx.max_run).expect("short");
    reconcile::run_at(&ctx.app, Utc::now() - max_run).await?;
    reconcile::checkpoint_ledgers(&ctx.app, 20, Duration::from_secs(3600)).await?;
    Ok(())
}
