//! Member budgets (migration 0085): the hold doors refuse a hold that would pass a member's
//! daily or monthly cap, in the same statement, race-free; a run counts in the window it was
//! opened in (hold while open, charge once settled); the caps are set only through
//! `set_member_budget`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use farmops::{
    Error,
    chat::{self, ChatDeps, ChatLimits, TurnRequest},
    credits::{self, Feature, NewRun, Settlement},
    db::{Db, Type},
    model::offline::OfflineChat,
    rag::NoRetrieval,
    testing::TestDb,
};
use uuid::Uuid;

use crate::sqlstate;

const PRIVILEGE: &str = "42501";

/// A change of one cap: `None` keeps it, `Some(None)` removes it.
type Cap = Option<Option<i64>>;

/// Sets `member`'s caps through the door, as `actor` (`None`: leave that cap as it is;
/// `Some(None)`: remove it).
async fn set_budget(
    db: &Db,
    farm: Uuid,
    actor: &str,
    member: &str,
    daily: Cap,
    monthly: Cap,
) -> Result<serde_json::Value, Error> {
    let tx = db.tenant(farm).await?;
    let (set_daily, daily) = (daily.is_some(), daily.flatten());
    let (set_monthly, monthly) = (monthly.is_some(), monthly.flatten());
    let row = tx
        .query_one(
            "SELECT set_member_budget($1, $2, $3, $4, $5, $6)",
            &[
                (&actor, Type::TEXT),
                (&member, Type::TEXT),
                (&set_daily, Type::BOOL),
                (&daily, Type::INT8),
                (&set_monthly, Type::BOOL),
                (&monthly, Type::INT8),
            ],
        )
        .await?;
    tx.commit().await?;
    Ok(row.get(0))
}

fn run(user: &str, credits: i64) -> NewRun<'_> {
    NewRun {
        feature: Feature::Chat,
        model: "offline-farm-assistant",
        user_id: Some(user),
        credits,
        request_summary: None,
    }
}

async fn open(db: &Db, farm: Uuid, user: &str, credits: i64) -> Result<Uuid, Error> {
    let r = credits::reserve_credits_committed(db.tenant(farm).await?, &run(user, credits)).await?;
    Ok(r.run_id)
}

async fn top_up(db: &Db, farm: Uuid, run: Uuid, credits: i64) -> Result<i64, Error> {
    Ok(
        credits::top_up_committed(db.tenant(farm).await?, run, credits)
            .await?
            .held,
    )
}

async fn settle(db: &Db, farm: Uuid, run: Uuid, charged: i64) -> Result<(), Error> {
    let tx = db.tenant(farm).await?;
    credits::settle_run(
        &tx,
        run,
        &Settlement {
            credits_charged: charged,
            ..Default::default()
        },
    )
    .await?
    .expect("the run was open");
    tx.commit().await
}

async fn audit_holds(db: &Db, farm: Uuid) -> bool {
    let tx = db.tenant(farm).await.unwrap();
    credits::audit_ledger(&tx).await.unwrap().holds
}

async fn farm_with(db: &TestDb, name: &str, credits: i64) -> Uuid {
    let farm = db.farm(name, credits).await.unwrap();
    for (user, role) in [
        ("owner", "owner"),
        ("manager", "manager"),
        ("worker", "worker"),
        ("other", "worker"),
    ] {
        db.member(farm, user, role).await.unwrap();
    }
    farm
}

/// The budget refusal's fields: (window, cap, spent, held, needed).
fn budget_refusal<T: std::fmt::Debug>(r: Result<T, Error>) -> (String, i64, i64, i64, i64) {
    match r {
        Err(Error::MemberBudgetExceeded {
            window,
            cap,
            spent,
            held,
            needed,
            ..
        }) => (window, cap, spent, held, needed),
        other => panic!("expected member_budget_exceeded, got {other:?}"),
    }
}

#[tokio::test]
async fn a_hold_past_the_cap_is_refused_and_a_settle_gives_the_budget_back() {
    let db = TestDb::new().await.unwrap();
    let farm = farm_with(&db, "caps", 1000).await;
    set_budget(&db.app, farm, "manager", "worker", Some(Some(10)), None)
        .await
        .unwrap();
    let first = open(&db.app, farm, "worker", 8).await.unwrap();
    // 8 held + 3 > 10: refused at the open and at a top-up, nothing written
    assert_eq!(
        budget_refusal(open(&db.app, farm, "worker", 3).await),
        ("daily".into(), 10, 0, 8, 3)
    );
    assert_eq!(
        budget_refusal(top_up(&db.app, farm, first, 3).await),
        ("daily".into(), 10, 0, 8, 3)
    );
    assert_eq!(top_up(&db.app, farm, first, 2).await.unwrap(), 10);
    // other members and runs without a member are not affected
    open(&db.app, farm, "other", 50).await.unwrap();
    credits::reserve_credits_committed(
        db.app.tenant(farm).await.unwrap(),
        &NewRun {
            user_id: None,
            ..run("", 50)
        },
    )
    .await
    .unwrap();
    // the settle charges 4 of 10: 6 come back to the farm and to the member's budget
    settle(&db.app, farm, first, 4).await.unwrap();
    let second = open(&db.app, farm, "worker", 6).await.unwrap();
    assert_eq!(
        budget_refusal(open(&db.app, farm, "worker", 1).await),
        ("daily".into(), 10, 4, 6, 1)
    );
    // an expired run charges nothing: its whole hold comes back
    let tx = db.app.tenant(farm).await.unwrap();
    credits::expire_reservations(&tx, Utc::now() + chrono::Duration::hours(1))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    open(&db.app, farm, "worker", 6).await.unwrap();
    let _ = second;
    // a cap of 0: no AI for that member; removing the caps lifts it
    set_budget(&db.app, farm, "owner", "worker", Some(Some(0)), None)
        .await
        .unwrap();
    assert_eq!(
        budget_refusal(open(&db.app, farm, "worker", 1).await).0,
        "daily"
    );
    set_budget(&db.app, farm, "owner", "worker", Some(None), Some(None))
        .await
        .unwrap();
    open(&db.app, farm, "worker", 500).await.unwrap();
    assert!(audit_holds(&db.app, farm).await);
    let owner = db.owner_client().await.unwrap();
    let rows: i64 = owner
        .query_one(
            "SELECT count(*) FROM member_budgets WHERE farm_id = $1",
            &[&farm],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0, "no caps is no row");
}

#[tokio::test]
async fn the_monthly_cap_binds_across_days_and_the_first_cap_passed_is_named() {
    let db = TestDb::new().await.unwrap();
    let farm = farm_with(&db, "monthly", 1000).await;
    set_budget(
        &db.app,
        farm,
        "owner",
        "worker",
        Some(Some(10)),
        Some(Some(12)),
    )
    .await
    .unwrap();
    let r = open(&db.app, farm, "worker", 9).await.unwrap();
    settle(&db.app, farm, r, 9).await.unwrap();
    // 9 + 2 passes the daily cap (10) first
    assert_eq!(
        budget_refusal(open(&db.app, farm, "worker", 2).await),
        ("daily".into(), 10, 9, 0, 2)
    );
    // a larger daily cap: now the monthly one (12) binds
    set_budget(&db.app, farm, "owner", "worker", Some(Some(100)), None)
        .await
        .unwrap();
    assert_eq!(
        budget_refusal(open(&db.app, farm, "worker", 4).await),
        ("monthly".into(), 12, 9, 0, 4)
    );
    open(&db.app, farm, "worker", 3).await.unwrap();
}

/// A POSIX time zone whose midnight comes `secs` seconds after the database's `now()`.
async fn zone_with_midnight_in(db: &TestDb, secs: i64) -> (String, DateTime<Utc>) {
    let owner = db.owner_client().await.unwrap();
    let now: DateTime<Utc> = owner.query_one("SELECT now()", &[]).await.unwrap().get(0);
    let of_day = now.timestamp().rem_euclid(86_400);
    // local = utc + east; local time of day = 86400 - secs
    let mut east = (86_400 - secs - of_day).rem_euclid(86_400);
    if east > 43_200 {
        east -= 86_400;
    }
    let (sign, a) = if east >= 0 { ('-', east) } else { ('+', -east) };
    let zone = format!(
        "<TST>{sign}{:02}:{:02}:{:02}",
        a / 3600,
        a % 3600 / 60,
        a % 60
    );
    (zone, now)
}

async fn resets_at(db: &TestDb, zone: &str, at: DateTime<Utc>) -> DateTime<Utc> {
    let owner = db.owner_client().await.unwrap();
    owner
        .query_one(
            "SELECT resets_at FROM budget_window($1, 'daily', $2)",
            &[&zone, &at],
        )
        .await
        .unwrap()
        .get(0)
}

async fn db_now(db: &TestDb) -> DateTime<Utc> {
    let owner = db.owner_client().await.unwrap();
    owner.query_one("SELECT now()", &[]).await.unwrap().get(0)
}

/// The documented rule at midnight, with the real clock: the farm's time zone is chosen so
/// that its midnight falls five seconds after the test starts. A run held before midnight
/// and topped up and settled after counts on the day it was opened; the new day starts at 0
/// (nothing carried, nothing counted twice); the month counts both days once (or, when that
/// midnight also starts a month, only the new day).
#[tokio::test]
async fn a_run_counts_in_the_day_it_was_opened_across_midnight() {
    let db = TestDb::new().await.unwrap();
    let farm = farm_with(&db, "midnight", 1000).await;
    set_budget(
        &db.app,
        farm,
        "owner",
        "worker",
        Some(Some(10)),
        Some(Some(30)),
    )
    .await
    .unwrap();
    let (zone, _) = zone_with_midnight_in(&db, 5).await;
    let owner = db.owner_client().await.unwrap();
    owner
        .execute(
            "UPDATE farms SET time_zone = $2 WHERE id = $1",
            &[&farm, &zone],
        )
        .await
        .unwrap();
    let before = open(&db.app, farm, "worker", 6).await.unwrap();
    let opened: DateTime<Utc> = owner
        .query_one("SELECT created_at FROM ai_runs WHERE id = $1", &[&before])
        .await
        .unwrap()
        .get(0);
    let midnight = resets_at(&db, &zone, opened).await;
    assert!(
        midnight - opened <= chrono::Duration::seconds(5),
        "the run was opened on the day before midnight ({opened} .. {midnight})"
    );
    // the same day: 6 held, 5 more would pass 10
    assert_eq!(
        budget_refusal(open(&db.app, farm, "worker", 5).await).0,
        "daily"
    );
    while db_now(&db).await <= midnight {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // after midnight: the old run's top-up still counts on its own day (6 + 5 > 10), and
    // the refusal says that window reset at the midnight just passed
    match top_up(&db.app, farm, before, 5).await {
        Err(Error::MemberBudgetExceeded {
            window,
            held: 6,
            resets_at,
            ..
        }) => {
            assert_eq!(window, "daily");
            assert_eq!(resets_at, midnight);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(top_up(&db.app, farm, before, 3).await.unwrap(), 9);
    // the new day starts at zero: a 10 fits
    let after = open(&db.app, farm, "worker", 10).await.unwrap();
    settle(&db.app, farm, before, 7).await.unwrap();
    settle(&db.app, farm, after, 10).await.unwrap();
    // the month counts both days once: 7 + 10 = 17 of 30
    assert_eq!(
        budget_refusal(open(&db.app, farm, "worker", 14).await),
        ("daily".into(), 10, 10, 0, 14)
    );
    set_budget(&db.app, farm, "owner", "worker", Some(None), None)
        .await
        .unwrap();
    // (when the synthetic midnight is also the first of a month, the month starts at zero
    // too: only the new day's 10 count)
    let month_start = |at: DateTime<Utc>| {
        let (db, zone) = (&db, zone.clone());
        async move {
            let owner = db.owner_client().await.unwrap();
            let row = owner
                .query_one(
                    "SELECT starts_at FROM budget_window($1, 'monthly', $2)",
                    &[&zone, &at],
                )
                .await
                .unwrap();
            row.get::<_, DateTime<Utc>>(0)
        }
    };
    if month_start(opened).await == month_start(midnight).await {
        assert_eq!(
            budget_refusal(open(&db.app, farm, "worker", 14).await),
            ("monthly".into(), 30, 17, 0, 14)
        );
        open(&db.app, farm, "worker", 13).await.unwrap();
    } else {
        assert_eq!(
            budget_refusal(open(&db.app, farm, "worker", 21).await),
            ("monthly".into(), 30, 10, 0, 21)
        );
        open(&db.app, farm, "worker", 20).await.unwrap();
    }
    assert!(audit_holds(&db.app, farm).await);
}

/// Window bounds: the day and the month start at midnight in the farm's zone (Lagos is
/// UTC+1), months of every length, a zone PostgreSQL does not know counts as UTC.
#[tokio::test]
async fn windows_start_at_midnight_in_the_farms_time_zone() {
    let db = TestDb::new().await.unwrap();
    let app = db.app_client().await.unwrap();
    let cases = [
        // (zone, unit, at, starts_at, resets_at)
        (
            "Africa/Lagos",
            "daily",
            "2026-03-14T22:59:59Z",
            "2026-03-13T23:00:00Z",
            "2026-03-14T23:00:00Z",
        ),
        (
            "Africa/Lagos",
            "daily",
            "2026-03-14T23:00:00Z",
            "2026-03-14T23:00:00Z",
            "2026-03-15T23:00:00Z",
        ),
        (
            "Africa/Lagos",
            "monthly",
            "2026-01-31T22:59:59Z",
            "2025-12-31T23:00:00Z",
            "2026-01-31T23:00:00Z",
        ),
        (
            "Africa/Lagos",
            "monthly",
            "2026-01-31T23:00:00Z",
            "2026-01-31T23:00:00Z",
            "2026-02-28T23:00:00Z",
        ),
        (
            "Africa/Lagos",
            "monthly",
            "2028-02-29T12:00:00Z",
            "2028-01-31T23:00:00Z",
            "2028-02-29T23:00:00Z",
        ),
        (
            "Africa/Lagos",
            "monthly",
            "2026-12-31T23:30:00Z",
            "2026-12-31T23:00:00Z",
            "2027-01-31T23:00:00Z",
        ),
        (
            "UTC",
            "monthly",
            "2026-12-31T23:30:00Z",
            "2026-12-01T00:00:00Z",
            "2027-01-01T00:00:00Z",
        ),
        (
            "Not/AZone",
            "daily",
            "2026-03-14T23:30:00Z",
            "2026-03-14T00:00:00Z",
            "2026-03-15T00:00:00Z",
        ),
    ];
    for (zone, unit, at, starts, resets) in cases {
        let at: DateTime<Utc> = at.parse().unwrap();
        let row = app
            .query_one(
                "SELECT starts_at, resets_at FROM budget_window($1, $2, $3)",
                &[&zone, &unit, &at],
            )
            .await
            .unwrap();
        let got: (DateTime<Utc>, DateTime<Utc>) = (row.get(0), row.get(1));
        assert_eq!(
            got,
            (starts.parse().unwrap(), resets.parse().unwrap()),
            "{zone} {unit} {at}"
        );
    }
}

/// A farm created without a time zone is in Africa/Lagos (the default, migration
/// 0087): its day starts at 23:00 UTC (Lagos is UTC+1 all year, no daylight saving), for the
/// window function over the farm's own setting and for a real refusal's `resets_at`.
#[tokio::test]
async fn a_farm_created_without_a_time_zone_is_in_lagos() {
    let db = TestDb::new().await.unwrap();
    let farm = farm_with(&db, "lagos", 1000).await;
    let owner = db.owner_client().await.unwrap();
    // 23:30 UTC on the 14th is 00:30 on the 15th in Lagos: the farm's day began at 23:00 UTC
    let at: DateTime<Utc> = "2026-03-14T23:30:00Z".parse().unwrap();
    let row = owner
        .query_one(
            "SELECT f.time_zone, w.starts_at, w.resets_at
               FROM farms f CROSS JOIN LATERAL budget_window(f.time_zone, 'daily', $2) w
              WHERE f.id = $1",
            &[&farm, &at],
        )
        .await
        .unwrap();
    let (zone, starts, resets): (String, DateTime<Utc>, DateTime<Utc>) =
        (row.get(0), row.get(1), row.get(2));
    assert_eq!(zone, "Africa/Lagos");
    assert_eq!(
        (starts, resets),
        (
            "2026-03-14T23:00:00Z".parse().unwrap(),
            "2026-03-15T23:00:00Z".parse().unwrap()
        )
    );
    // a refusal now names the next 23:00 UTC as the daily reset
    set_budget(&db.app, farm, "owner", "worker", Some(Some(10)), None)
        .await
        .unwrap();
    open(&db.app, farm, "worker", 8).await.unwrap();
    let now = db_now(&db).await;
    match open(&db.app, farm, "worker", 3).await {
        Err(Error::MemberBudgetExceeded {
            window, resets_at, ..
        }) => {
            assert_eq!(window, "daily");
            assert_eq!(resets_at.format("%H:%M:%S").to_string(), "23:00:00");
            assert!(
                resets_at > now && resets_at - now <= chrono::Duration::hours(24),
                "{now} .. {resets_at}"
            );
        }
        other => panic!("{other:?}"),
    }
}

/// 32 concurrent chat turns by one worker whose daily cap is about five turns' charge, each
/// on its own connection, while another worker chats: the worker's charges never pass the
/// cap, the turns the budget cannot take get `member_budget_exceeded`, the other worker's
/// turns all run, and the ledger holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_concurrent_turns_by_one_worker_stay_within_the_daily_cap() {
    let db = TestDb::new().await.unwrap();
    let farm = farm_with(&db, "crowd", 100_000).await;
    let pool = db.app_pool(48).unwrap();
    let limits = ChatLimits::default();
    let deps = Arc::new((pool.clone(), limits));
    let turn = |user: &'static str, i: usize| {
        let deps = Arc::clone(&deps);
        async move {
            let chat_deps = ChatDeps {
                db: &deps.0,
                model: &OfflineChat,
                retriever: &NoRetrieval,
                limits: &deps.1,
            };
            let request = TurnRequest {
                message: format!("we used {} bags of feed today", i + 1),
                conversation_id: None,
            };
            chat::run_turn(&chat_deps, farm, user, &request).await
        }
    };
    // what one turn charges (the manager's, no budget)
    let probe = turn("manager", 0).await.unwrap();
    let per_turn = probe.credits.charged;
    assert!(per_turn > 0);
    let cap = 5 * per_turn;
    set_budget(&db.app, farm, "owner", "worker", Some(Some(cap)), None)
        .await
        .unwrap();
    let warm: Vec<_> = futures::future::join_all((0..40).map(|_| pool.client())).await;
    drop(warm);
    let barrier = Arc::new(tokio::sync::Barrier::new(40));
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let user = if i < 32 { "worker" } else { "other" };
            let (barrier, turn) = (Arc::clone(&barrier), turn(user, i));
            tokio::spawn(async move {
                barrier.wait().await;
                (user, turn.await)
            })
        })
        .collect();
    let (mut ran, mut refused, mut others) = (0, 0, 0);
    for t in futures::future::join_all(tasks).await {
        match t.unwrap() {
            ("worker", Ok(_)) => ran += 1,
            ("worker", Err(Error::MemberBudgetExceeded { window, cap: c, .. })) => {
                assert_eq!((window.as_str(), c), ("daily", cap));
                refused += 1;
            }
            ("other", Ok(_)) => others += 1,
            (user, other) => panic!("{user}: {other:?}"),
        }
    }
    assert_eq!(ran + refused, 32);
    assert!((1..=5).contains(&ran), "{ran} turns ran, {refused} refused");
    assert_eq!(others, 8, "the other worker is not affected");
    let owner = db.owner_client().await.unwrap();
    let row = owner
        .query_one(
            "SELECT coalesce(sum(credits_charged), 0)::bigint, count(*) FILTER (WHERE status = 'reserved')
               FROM ai_runs WHERE farm_id = $1 AND user_id = 'worker'",
            &[&farm],
        )
        .await
        .unwrap();
    let (charged, open): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(open, 0);
    assert!(charged <= cap, "charged {charged} of a {cap} cap");
    assert!(audit_holds(&db.app, farm).await);
    let tx = db.app.tenant(farm).await.unwrap();
    let audit = credits::audit_ledger(&tx).await.unwrap();
    assert_eq!(audit.credit_balance, audit.last_balance_after);
    assert_eq!(audit.negative_balances, 0);
}

/// Caps change only through the door: the application role cannot write the table; a worker
/// or a viewer cannot use the door, a manager cannot cap an owner or a manager; bad caps are
/// refused with the field named; nothing changes on a refusal; each change is recorded.
#[tokio::test]
async fn budgets_change_only_through_the_door() {
    let db = TestDb::new().await.unwrap();
    let farm = farm_with(&db, "door", 100).await;
    db.member(farm, "viewer", "viewer").await.unwrap();
    for sql in [
        "INSERT INTO member_budgets (farm_id, user_id, daily_cap, set_by)
         VALUES (current_farm_id(), 'worker', 1000, 'worker')",
        "UPDATE member_budgets SET daily_cap = 1000",
        "DELETE FROM member_budgets",
    ] {
        assert_eq!(
            sqlstate(crate::exec(&db.app, farm, sql).await),
            PRIVILEGE,
            "{sql}"
        );
    }
    set_budget(
        &db.app,
        farm,
        "owner",
        "worker",
        Some(Some(10)),
        Some(Some(100)),
    )
    .await
    .unwrap();
    let refusals: [(&str, &str, Cap, Cap, &str); 8] = [
        ("worker", "worker", Some(None), None, "FO403"),
        ("viewer", "worker", Some(Some(1000)), None, "FO403"),
        ("manager", "owner", Some(Some(1)), None, "FO403"),
        ("manager", "manager", Some(Some(1)), None, "FO403"),
        ("stranger", "worker", Some(Some(1)), None, "FO404"),
        ("owner", "nobody", Some(Some(1)), None, "FO404"),
        ("owner", "worker", Some(Some(-1)), None, "FO422"),
        ("owner", "worker", None, Some(Some(1_000_000_001)), "FO422"),
    ];
    for (actor, member, daily, monthly, code) in refusals {
        assert_eq!(
            sqlstate(set_budget(&db.app, farm, actor, member, daily, monthly).await),
            code,
            "{actor} -> {member}"
        );
    }
    assert_eq!(
        sqlstate(set_budget(&db.app, farm, "owner", "worker", None, None).await),
        "FO422"
    );
    let owner = db.owner_client().await.unwrap();
    let caps = owner
        .query_one(
            "SELECT daily_cap, monthly_cap FROM member_budgets WHERE farm_id = $1 AND user_id = 'worker'",
            &[&farm],
        )
        .await
        .unwrap();
    assert_eq!(
        (caps.get::<_, i64>(0), caps.get::<_, i64>(1)),
        (10, 100),
        "nothing changed"
    );
    // a manager may cap a worker; removing one cap keeps the other
    let after = set_budget(&db.app, farm, "manager", "worker", Some(None), None)
        .await
        .unwrap();
    assert_eq!(
        after,
        serde_json::json!({"user_id": "worker", "daily": null, "monthly": 100})
    );
    let events: Vec<(String, String, serde_json::Value)> = owner
        .query(
            "SELECT actor, subject, details FROM farm_events
              WHERE farm_id = $1 AND kind = 'member_budget_set' ORDER BY id",
            &[&farm],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[1].0, "manager");
    assert_eq!(
        events[1].2,
        serde_json::json!({"before": {"daily": 10, "monthly": 100},
                           "after": {"daily": null, "monthly": 100}})
    );
    // a removed member's budget goes with the membership
    let tx = db.app.tenant(farm).await.unwrap();
    tx.query(
        "SELECT remove_member($1, $2)",
        &[(&"owner", Type::TEXT), (&"worker", Type::TEXT)],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let left: i64 = owner
        .query_one(
            "SELECT count(*) FROM member_budgets WHERE farm_id = $1",
            &[&farm],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}
