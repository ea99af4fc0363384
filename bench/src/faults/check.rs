//! The checker: the recorded history against the final database (after a final reconcile).
//! Pure: it takes a [`History`] and a [`Snapshot`] and lists every anomaly; the tests below
//! plant one of each kind and show it is reported.

use std::collections::{HashMap, HashSet};

use farmops::status::{DraftStatus, RunStatus};
use uuid::Uuid;

use super::{
    history::{History, Op, Outcome},
    snapshot::Snapshot,
};

/// One thing the history and the database disagree on, or an invariant the database breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    pub kind: &'static str,
    pub detail: String,
}

pub const BALANCE: &str = "balance disagrees";
pub const NEGATIVE: &str = "negative balance";
pub const CLOSED_TWICE: &str = "hold closed twice";
pub const LEFT_OPEN: &str = "hold not closed after the final reconcile";
pub const LOST: &str = "committed but absent";
pub const PHANTOM: &str = "failed but present";
pub const PARTIAL: &str = "partly written";
pub const DRAFT_TWICE: &str = "draft decided twice";
pub const GRANTED_TWICE: &str = "duplicate delivery granted twice";
pub const LOT_NOT_EXPIRED: &str = "expired lot still open";
pub const UNKNOWN_RUN: &str = "run no operation opened";

/// One delivery of a grant: its answer, whether it said it granted, the amount asked.
type Delivery = (Outcome, bool, i64);

/// Every anomaly of `h` against `s`; empty when the ledger survived.
pub fn check(h: &History, s: &Snapshot) -> Vec<Anomaly> {
    let mut out = Vec::new();
    let mut flag = |kind, detail: String| out.push(Anomaly { kind, detail });

    // the ledger of every farm adds up and never went negative
    for (farm, f) in &s.farms {
        let last = f.last_balance_after.unwrap_or(0);
        if f.balance != last || f.balance != f.ledger_sum || f.balance != f.live_lots {
            flag(
                BALANCE,
                format!(
                    "farm {farm}: balance {}, last balance_after {last}, ledger sum {}, live lots {}",
                    f.balance, f.ledger_sum, f.live_lots
                ),
            );
        }
        if f.balance < 0
            || f.min_balance_after.is_some_and(|m| m < 0)
            || f.min_lot_remaining.is_some_and(|m| m < 0)
        {
            flag(NEGATIVE, format!("farm {farm}: {f:?}"));
        }
    }

    // every hold closed exactly once, whole
    for (id, r) in &s.runs {
        let closes = r.settle_legs + r.expire_legs;
        if closes > 1 {
            flag(CLOSED_TWICE, format!("run {id}: {closes} closing legs"));
        } else if closes == 0 || r.status == RunStatus::Reserved {
            flag(LEFT_OPEN, format!("run {id}: status {}", r.status));
        }
        if r.reserve_legs == 0 || r.reserve_sum != r.reserved {
            flag(
                PARTIAL,
                format!(
                    "run {id}: {} reserve legs taking {}, hold {}",
                    r.reserve_legs, r.reserve_sum, r.reserved
                ),
            );
        }
        let settled = matches!(r.status, RunStatus::Succeeded | RunStatus::Failed);
        if (settled && r.settle_legs != 1) || (r.status == RunStatus::Expired && r.expire_legs != 1)
        {
            flag(
                PARTIAL,
                format!("run {id}: status {} without its leg", r.status),
            );
        }
    }
    for (id, l) in &s.lots {
        if l.grant_moves != 1 {
            flag(
                GRANTED_TWICE,
                format!("lot {id:?}: {} grant moves", l.grant_moves),
            );
        }
        if l.expired_open {
            flag(LOT_NOT_EXPIRED, format!("lot {id:?}"));
        }
    }

    // runs: opened, topped up, settled or abandoned as the clients saw
    let by_tag: HashMap<&str, (&Uuid, _)> = s
        .runs
        .iter()
        .filter_map(|(id, r)| r.tag.as_deref().map(|t| (t, (id, r))))
        .collect();
    let mut tags = HashSet::new();
    let mut top_ups: HashMap<Uuid, (i64, bool)> = HashMap::new(); // (largest known hold, any unknown)
    for e in &h.events {
        match &e.op {
            Op::Open { tag, run, held, .. } => {
                tags.insert(tag.as_str());
                let found = by_tag.get(tag.as_str());
                match (e.outcome, found) {
                    (Outcome::Committed, None) => flag(LOST, format!("open {tag}")),
                    (Outcome::Committed, Some((id, _))) if Some(**id) != *run => flag(
                        LOST,
                        format!("open {tag}: run {id}, the client saw {run:?}"),
                    ),
                    (Outcome::Refused | Outcome::Failed, Some((id, _))) => {
                        flag(PHANTOM, format!("open {tag}: run {id}"))
                    }
                    _ => {}
                }
                if let Some(run) = run {
                    let t = top_ups.entry(*run).or_default();
                    t.0 = t.0.max(*held);
                }
            }
            Op::TopUp { run, held } => {
                let t = top_ups.entry(*run).or_default();
                match e.outcome {
                    Outcome::Committed => t.0 = t.0.max(*held),
                    Outcome::Unknown => t.1 = true,
                    _ => {}
                }
            }
            Op::Settle {
                run,
                failed,
                charge,
                closed_already,
            } => {
                let Some(r) = s.runs.get(run) else {
                    flag(LOST, format!("settle of run {run}: no such run"));
                    continue;
                };
                let want = if *failed {
                    RunStatus::Failed
                } else {
                    RunStatus::Succeeded
                };
                let ours = r.status == want && r.charged == Some(*charge);
                let expired = r.status == RunStatus::Expired;
                match (e.outcome, closed_already) {
                    (Outcome::Committed, false) if !ours => flag(
                        LOST,
                        format!("settle of run {run} as {want} charging {charge}: {r:?}"),
                    ),
                    (Outcome::Committed, true) if !expired => flag(
                        PHANTOM,
                        format!("run {run} was closed when settled, yet is {}", r.status),
                    ),
                    (Outcome::Failed | Outcome::Refused, _) if !expired => flag(
                        PHANTOM,
                        format!("failed settle of run {run}, yet it is {}", r.status),
                    ),
                    (Outcome::Unknown, _) if !(ours || expired) => {
                        flag(PARTIAL, format!("settle of run {run} (answer lost): {r:?}"))
                    }
                    _ => {}
                }
            }
            Op::Abandon { run } => match s.runs.get(run) {
                Some(r) if r.status == RunStatus::Expired && r.expire_legs == 1 => {}
                other => flag(
                    LEFT_OPEN,
                    format!("abandoned run {run} not expired once: {other:?}"),
                ),
            },
            _ => {}
        }
    }
    for (run, (known, unknown)) in &top_ups {
        let Some(r) = s.runs.get(run) else { continue };
        if r.reserved < *known {
            flag(
                LOST,
                format!("run {run}: holds {}, the client saw {known}", r.reserved),
            );
        } else if r.reserved > *known && !unknown {
            flag(
                PHANTOM,
                format!("run {run}: holds {}, the client saw {known}", r.reserved),
            );
        }
    }
    for (id, r) in &s.runs {
        if r.tag.as_deref().is_none_or(|t| !tags.contains(t)) {
            flag(UNKNOWN_RUN, format!("run {id} ({:?})", r.tag));
        }
    }

    // grants: every key granted once, as its deliveries saw
    let mut keys: HashMap<(Uuid, &str), Vec<Delivery>> = HashMap::new();
    for e in &h.events {
        if let Op::Grant {
            key,
            granted,
            amount,
            ..
        } = &e.op
        {
            keys.entry((e.farm, key.as_str()))
                .or_default()
                .push((e.outcome, *granted, *amount));
        }
    }
    for ((farm, key), deliveries) in &keys {
        let lot = s.lots.get(&(*farm, key.to_string()));
        let committed = |g: bool| {
            deliveries
                .iter()
                .filter(|d| d.0 == Outcome::Committed && d.1 == g)
                .count()
        };
        let (granted, repeated) = (committed(true), committed(false));
        let unknown = deliveries.iter().any(|d| d.0 == Outcome::Unknown);
        if granted > 1 {
            flag(
                GRANTED_TWICE,
                format!("grant {key}: {granted} deliveries granted"),
            );
        }
        match lot {
            None if granted + repeated > 0 => flag(LOST, format!("grant {key}")),
            None => {}
            Some(_) if granted + repeated == 0 && !unknown => {
                flag(PHANTOM, format!("grant {key}: every delivery failed"))
            }
            Some(_) if granted == 0 && !unknown => flag(
                GRANTED_TWICE,
                format!("grant {key}: granted, yet no delivery did it"),
            ),
            Some(l) if l.amount != deliveries[0].2 => flag(
                PARTIAL,
                format!(
                    "grant {key}: lot of {}, asked {}",
                    l.amount, deliveries[0].2
                ),
            ),
            Some(_) => {}
        }
    }

    // drafts: at most one outcome, the one a client saw commit
    let drafts_by_tag: HashMap<&str, &Uuid> = s
        .drafts
        .iter()
        .filter_map(|(id, d)| d.tag.as_deref().map(|t| (t, id)))
        .collect();
    let mut decisions: HashMap<Uuid, [Option<Outcome>; 2]> = HashMap::new();
    for e in &h.events {
        match &e.op {
            Op::DraftCreate { tag, .. } => match (e.outcome, drafts_by_tag.get(tag.as_str())) {
                (Outcome::Committed, None) => flag(LOST, format!("draft {tag}")),
                (Outcome::Failed | Outcome::Refused, Some(id)) => {
                    flag(PHANTOM, format!("draft {tag}: {id}"))
                }
                _ => {}
            },
            Op::Confirm { draft } => decisions.entry(*draft).or_default()[0] = Some(e.outcome),
            Op::Discard { draft } => decisions.entry(*draft).or_default()[1] = Some(e.outcome),
            _ => {}
        }
    }
    for (id, d) in &s.drafts {
        if d.records != i64::from(d.status == DraftStatus::Confirmed) {
            flag(
                PARTIAL,
                format!("draft {id}: {} with {} records", d.status, d.records),
            );
        }
    }
    for (draft, [confirm, discard]) in &decisions {
        let Some(d) = s.drafts.get(draft) else {
            flag(LOST, format!("decided draft {draft}: no such draft"));
            continue;
        };
        let may = |o: Option<Outcome>| matches!(o, Some(Outcome::Committed | Outcome::Unknown));
        if confirm == &Some(Outcome::Committed) && discard == &Some(Outcome::Committed) {
            flag(
                DRAFT_TWICE,
                format!("draft {draft}: confirmed and discarded"),
            );
        }
        let ok = match d.status {
            DraftStatus::Confirmed => may(*confirm) && discard != &Some(Outcome::Committed),
            DraftStatus::Discarded => may(*discard) && confirm != &Some(Outcome::Committed),
            DraftStatus::Pending => ![confirm, discard].contains(&&Some(Outcome::Committed)),
        };
        if !ok {
            flag(
                LOST,
                format!(
                    "draft {draft} is {}; confirm {confirm:?}, discard {discard:?}",
                    d.status
                ),
            );
        }
    }
    out
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
