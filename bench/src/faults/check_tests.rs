//! A checker that cannot fail is no checker: a consistent history passes, and a history or
//! database with one planted anomaly of each kind is reported with that kind.

use farmops::status::{DraftStatus, RunStatus};
use uuid::Uuid;

use super::*;
use crate::faults::{
    history::Event,
    snapshot::{DraftState, FarmState, LotState, RunState},
};

fn farm() -> Uuid {
    Uuid::from_u128(1)
}

fn ev(op: Op, outcome: Outcome) -> Event {
    Event {
        farm: farm(),
        op,
        outcome,
    }
}

fn run(n: u128) -> Uuid {
    Uuid::from_u128(100 + n)
}

fn run_state(tag: &str, status: RunStatus, reserved: i64, charged: i64) -> RunState {
    RunState {
        farm: farm(),
        tag: Some(tag.into()),
        status,
        reserved,
        charged: Some(charged),
        reserve_legs: 1,
        reserve_sum: reserved,
        settle_legs: i64::from(status != RunStatus::Expired),
        expire_legs: i64::from(status == RunStatus::Expired),
    }
}

/// A consistent world: a farm granted 100, one run settled (held 10, charged 4), one
/// abandoned and expired (held 5), one grant delivered twice, one draft confirmed while its
/// discard was refused. Balance 100 - 4 = 96.
fn world() -> (History, Snapshot) {
    let draft = Uuid::from_u128(7);
    let open = |n: u128, tag: &str, held| Op::Open {
        tag: tag.into(),
        run: Some(run(n)),
        held,
        member: false,
    };
    let grant = |duplicate, granted| Op::Grant {
        key: "k1".into(),
        amount: 100,
        expires: false,
        duplicate,
        granted,
    };
    let events = vec![
        ev(grant(false, true), Outcome::Committed),
        ev(grant(true, false), Outcome::Committed),
        ev(open(1, "t1", 6), Outcome::Committed),
        ev(
            Op::TopUp {
                run: run(1),
                held: 10,
            },
            Outcome::Committed,
        ),
        ev(
            Op::Settle {
                run: run(1),
                failed: false,
                charge: 4,
                closed_already: false,
            },
            Outcome::Committed,
        ),
        ev(open(2, "t2", 5), Outcome::Committed),
        ev(Op::Abandon { run: run(2) }, Outcome::Committed),
        ev(
            Op::Open {
                tag: "t3".into(),
                run: None,
                held: 0,
                member: true,
            },
            Outcome::Refused,
        ),
        ev(
            Op::DraftCreate {
                tag: "d1".into(),
                draft: Some(draft),
            },
            Outcome::Committed,
        ),
        ev(Op::Confirm { draft }, Outcome::Committed),
        ev(Op::Discard { draft }, Outcome::Refused),
    ];
    let mut s = Snapshot::default();
    s.farms.insert(
        farm(),
        FarmState {
            balance: 96,
            last_balance_after: Some(96),
            ledger_sum: 96,
            min_balance_after: Some(86),
            live_lots: 96,
            min_lot_remaining: Some(96),
        },
    );
    let mut r1 = run_state("t1", RunStatus::Succeeded, 10, 4);
    r1.reserve_legs = 2;
    s.runs.insert(run(1), r1);
    s.runs
        .insert(run(2), run_state("t2", RunStatus::Expired, 5, 0));
    s.lots.insert(
        (farm(), "k1".into()),
        LotState {
            amount: 100,
            grant_moves: 1,
            expired_open: false,
        },
    );
    s.drafts.insert(
        draft,
        DraftState {
            farm: farm(),
            tag: Some("d1".into()),
            status: DraftStatus::Confirmed,
            records: 1,
        },
    );
    let h = History {
        events,
        ..Default::default()
    };
    (h, s)
}

fn kinds(h: &History, s: &Snapshot) -> Vec<&'static str> {
    check(h, s).into_iter().map(|a| a.kind).collect()
}

#[test]
fn a_consistent_history_has_no_anomaly() {
    let (h, s) = world();
    assert_eq!(check(&h, &s), vec![]);
}

#[test]
fn every_planted_anomaly_is_reported() {
    type Plant = fn(&mut History, &mut Snapshot);
    let cases: Vec<(&str, Plant, &str)> = vec![
        (
            "balance off its ledger",
            |_, s| s.farms.get_mut(&farm()).unwrap().ledger_sum = 95,
            BALANCE,
        ),
        (
            "balance off its lots",
            |_, s| s.farms.get_mut(&farm()).unwrap().live_lots = 97,
            BALANCE,
        ),
        (
            "last balance_after",
            |_, s| s.farms.get_mut(&farm()).unwrap().last_balance_after = Some(90),
            BALANCE,
        ),
        (
            "negative",
            |_, s| s.farms.get_mut(&farm()).unwrap().min_balance_after = Some(-1),
            NEGATIVE,
        ),
        (
            "closed twice",
            |_, s| s.runs.get_mut(&run(1)).unwrap().expire_legs = 1,
            CLOSED_TWICE,
        ),
        (
            "abandoned, never expired",
            |_, s| {
                let r = s.runs.get_mut(&run(2)).unwrap();
                (r.status, r.expire_legs, r.charged) = (RunStatus::Reserved, 0, None);
            },
            LEFT_OPEN,
        ),
        (
            "abandoned run settled",
            |_, s| {
                let r = s.runs.get_mut(&run(2)).unwrap();
                (r.status, r.expire_legs, r.settle_legs) = (RunStatus::Succeeded, 0, 1);
            },
            LEFT_OPEN,
        ),
        (
            "committed open lost",
            |_, s| {
                s.runs.remove(&run(1));
            },
            LOST,
        ),
        (
            "refused open present",
            |_, s| {
                s.runs
                    .insert(run(3), run_state("t3", RunStatus::Expired, 3, 0));
            },
            PHANTOM,
        ),
        (
            "committed top-up lost",
            |_, s| {
                let r = s.runs.get_mut(&run(1)).unwrap();
                (r.reserved, r.reserve_sum, r.reserve_legs) = (6, 6, 1);
            },
            LOST,
        ),
        (
            "failed top-up present",
            |h, s| {
                h.events.push(ev(
                    Op::TopUp {
                        run: run(2),
                        held: 0,
                    },
                    Outcome::Failed,
                ));
                let r = s.runs.get_mut(&run(2)).unwrap();
                (r.reserved, r.reserve_sum, r.reserve_legs) = (8, 8, 2);
            },
            PHANTOM,
        ),
        (
            "reserve legs off the hold",
            |_, s| s.runs.get_mut(&run(1)).unwrap().reserve_sum = 9,
            PARTIAL,
        ),
        (
            "committed settle lost",
            |_, s| {
                let r = s.runs.get_mut(&run(1)).unwrap();
                (r.status, r.settle_legs, r.expire_legs, r.charged) =
                    (RunStatus::Expired, 0, 1, Some(0));
            },
            LOST,
        ),
        (
            "settle charged otherwise",
            |_, s| s.runs.get_mut(&run(1)).unwrap().charged = Some(5),
            LOST,
        ),
        (
            "failed settle present",
            |h, s| {
                h.events.push(ev(
                    Op::Settle {
                        run: run(2),
                        failed: true,
                        charge: 0,
                        closed_already: false,
                    },
                    Outcome::Failed,
                ));
                h.events.retain(|e| !matches!(e.op, Op::Abandon { .. }));
                let r = s.runs.get_mut(&run(2)).unwrap();
                (r.status, r.expire_legs, r.settle_legs) = (RunStatus::Failed, 0, 1);
            },
            PHANTOM,
        ),
        (
            "lost-answer settle half written",
            |h, s| {
                h.events.push(ev(
                    Op::Settle {
                        run: run(2),
                        failed: false,
                        charge: 3,
                        closed_already: false,
                    },
                    Outcome::Unknown,
                ));
                h.events.retain(|e| !matches!(e.op, Op::Abandon { .. }));
                let r = s.runs.get_mut(&run(2)).unwrap();
                (r.status, r.expire_legs, r.settle_legs, r.charged) =
                    (RunStatus::Succeeded, 0, 1, Some(2));
            },
            PARTIAL,
        ),
        (
            "status without its leg",
            |_, s| s.runs.get_mut(&run(2)).unwrap().expire_legs = 0,
            LEFT_OPEN,
        ),
        (
            "run nobody opened",
            |_, s| {
                s.runs
                    .insert(run(9), run_state("stray", RunStatus::Expired, 1, 0));
            },
            UNKNOWN_RUN,
        ),
        (
            "duplicate granted twice",
            |h, _| {
                h.events.push(ev(
                    Op::Grant {
                        key: "k1".into(),
                        amount: 100,
                        expires: false,
                        duplicate: true,
                        granted: true,
                    },
                    Outcome::Committed,
                ));
            },
            GRANTED_TWICE,
        ),
        (
            "lot with two grant moves",
            |_, s| s.lots.get_mut(&(farm(), "k1".into())).unwrap().grant_moves = 2,
            GRANTED_TWICE,
        ),
        (
            "committed grant lost",
            |_, s| {
                s.lots.clear();
            },
            LOST,
        ),
        (
            "failed grant present",
            |h, s| {
                h.events.push(ev(
                    Op::Grant {
                        key: "k2".into(),
                        amount: 5,
                        expires: true,
                        duplicate: false,
                        granted: false,
                    },
                    Outcome::Failed,
                ));
                s.lots.insert(
                    (farm(), "k2".into()),
                    LotState {
                        amount: 5,
                        grant_moves: 1,
                        expired_open: false,
                    },
                );
            },
            PHANTOM,
        ),
        (
            "expired lot open",
            |_, s| s.lots.get_mut(&(farm(), "k1".into())).unwrap().expired_open = true,
            LOT_NOT_EXPIRED,
        ),
        (
            "draft decided twice",
            |h, s| {
                for e in h.events.iter_mut() {
                    if matches!(e.op, Op::Discard { .. }) {
                        e.outcome = Outcome::Committed
                    }
                }
                s.drafts.get_mut(&Uuid::from_u128(7)).unwrap().status = DraftStatus::Discarded;
            },
            DRAFT_TWICE,
        ),
        (
            "confirmed draft without its record",
            |_, s| s.drafts.get_mut(&Uuid::from_u128(7)).unwrap().records = 0,
            PARTIAL,
        ),
        (
            "committed confirm lost",
            |_, s| {
                let d = s.drafts.get_mut(&Uuid::from_u128(7)).unwrap();
                (d.status, d.records) = (DraftStatus::Pending, 0);
            },
            LOST,
        ),
        (
            "refused discard applied",
            |_, s| {
                let d = s.drafts.get_mut(&Uuid::from_u128(7)).unwrap();
                (d.status, d.records) = (DraftStatus::Discarded, 0);
            },
            LOST,
        ),
        (
            "committed draft lost",
            |_, s| {
                s.drafts.get_mut(&Uuid::from_u128(7)).unwrap().tag = Some("other".into());
            },
            LOST,
        ),
    ];
    for (name, plant, want) in cases {
        let (mut h, mut s) = world();
        plant(&mut h, &mut s);
        let got = kinds(&h, &s);
        assert!(got.contains(&want), "{name}: wanted {want}, got {got:?}");
    }
}

#[test]
fn a_lost_commit_answer_may_go_either_way_but_not_half() {
    for present in [false, true] {
        let (mut h, mut s) = world();
        h.events.push(ev(
            Op::Open {
                tag: "t4".into(),
                run: None,
                held: 0,
                member: false,
            },
            Outcome::Unknown,
        ));
        if present {
            s.runs
                .insert(run(4), run_state("t4", RunStatus::Expired, 2, 0));
        }
        assert_eq!(check(&h, &s), vec![], "present: {present}");
        if present {
            s.runs.get_mut(&run(4)).unwrap().reserve_legs = 0;
            assert_eq!(kinds(&h, &s), vec![PARTIAL]);
        }
    }
}
