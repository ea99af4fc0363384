//! What the clients saw: every operation with the answer it got, and the faults injected.
//!
//! An answer is one of four: the operation committed; the function refused it (402, 409:
//! nothing written); it failed before its COMMIT was sent (the transaction rolled back); or
//! the COMMIT's answer was lost (the connection died after it was sent, or a one-round-trip
//! commit failed at the connection): then the database holds all of it or none of it, and
//! only the checker, reading the database, knows which.

use std::collections::BTreeMap;

use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    Committed,
    /// The function said no (insufficient credits, member budget, already decided).
    Refused,
    /// Failed before the COMMIT was sent, or the server rolled it back: nothing written.
    Failed,
    /// The COMMIT's answer was lost: wholly present or wholly absent.
    Unknown,
}

/// One operation and what identifies its writes in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A run opened with its first hold (`MeteredRun::open`), its `request_summary` = `tag`;
    /// `member`: the member has a budget. `held`: the hold when committed.
    Open {
        tag: String,
        run: Option<Uuid>,
        held: i64,
        member: bool,
    },
    /// A top-up of an open run's hold (`MeteredRun::hold_for`); `held`: the run's whole hold
    /// after it, when committed.
    TopUp {
        run: Uuid,
        held: i64,
    },
    /// A settle (`MeteredRun::settle` + COMMIT), as failed or succeeded, charging `charge`;
    /// `closed_already`: the settle found the run closed (reconcile expired it).
    Settle {
        run: Uuid,
        failed: bool,
        charge: i64,
        closed_already: bool,
    },
    /// The run is dropped between a hold and its settle (the Lambda timed out).
    Abandon {
        run: Uuid,
    },
    /// One delivery of a grant (`credits::grant_lot`) keyed `key`; `granted`: the answer said
    /// this delivery granted it (false: the key had already granted).
    Grant {
        key: String,
        amount: i64,
        expires: bool,
        duplicate: bool,
        granted: bool,
    },
    /// A reconcile pass (expire stale holds, close expired lots, checkpoint ledgers).
    Reconcile,
    /// A draft written for the confirm/discard race, its summary = `tag`.
    DraftCreate {
        tag: String,
        draft: Option<Uuid>,
    },
    Confirm {
        draft: Uuid,
    },
    Discard {
        draft: Uuid,
    },
}

impl Op {
    /// The row label of the operation in the table.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Open { member: false, .. } => "open run (first hold)",
            Op::Open { member: true, .. } => "open run (member budget)",
            Op::TopUp { .. } => "top up hold",
            Op::Settle { failed: false, .. } => "settle (success)",
            Op::Settle { failed: true, .. } => "settle (failure)",
            Op::Abandon { .. } => "abandon between hold and settle",
            Op::Grant {
                duplicate: true, ..
            } => "grant (duplicate delivery)",
            Op::Grant { expires: true, .. } => "grant (expiring lot)",
            Op::Grant { .. } => "grant",
            Op::Reconcile => "reconcile pass",
            Op::DraftCreate { .. } => "draft written",
            Op::Confirm { .. } => "draft confirm (race)",
            Op::Discard { .. } => "draft discard (race)",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub farm: Uuid,
    pub op: Op,
    pub outcome: Outcome,
}

/// The whole recorded history of a run of the generator.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub events: Vec<Event>,
    /// Faults injected (or met), by kind.
    pub faults: BTreeMap<String, u64>,
    /// Wall time of the workload (the final reconcile excluded).
    pub seconds: f64,
}

impl History {
    pub fn ops(&self) -> usize {
        self.events.len()
    }

    /// Operations by kind, each split by outcome (committed, refused, failed, unknown).
    pub fn by_kind(&self) -> BTreeMap<&'static str, [u64; 4]> {
        let mut out: BTreeMap<&'static str, [u64; 4]> = BTreeMap::new();
        for e in &self.events {
            let slot = match e.outcome {
                Outcome::Committed => 0,
                Outcome::Refused => 1,
                Outcome::Failed => 2,
                Outcome::Unknown => 3,
            };
            out.entry(e.op.kind()).or_default()[slot] += 1;
        }
        out
    }
}
