//! Section 1: credit reservation under contention.
//!
//! (a) ours: `credits::reserve_credits_committed`, one statement (conditional debit + run +
//!     ledger leg) pipelined with BEGIN and COMMIT: 1 round trip, the farm row locked only
//!     while the server executes it;
//! (b) naive locking: BEGIN; SELECT ... FOR UPDATE; UPDATE; INSERT run; INSERT ledger; COMMIT:
//!     6 round trips with the row lock held across them;
//! (c) naive read-then-write without locking: read the balance, then write `balance - 1`.
//!     On our schema the commit-time ledger check refuses every lost update (counted as
//!     "refused"); on plain tables without the schema's rules it oversells (counted).
//!
//! The designs (their SQL and one reservation of each) are in [`designs`]; this module
//! measures them and prints the report.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use farmops::{
    credits,
    db::{Db, Type},
    testing::TestDb,
};
use rand::Rng;
use uuid::Uuid;

use crate::{
    Mode,
    stats::{median, ms, percentile, ratio},
};

mod designs;

pub(crate) use designs::NAIVE_CHANGE_BALANCE;
use designs::{Design, Outcome, reserve_once};

#[derive(Clone, Copy)]
struct Cell {
    per_second: f64,
    p50: Duration,
    p99: Duration,
    refused: usize,
}

async fn measure(
    pool: &Db,
    design: Design,
    farms: Arc<Vec<Uuid>>,
    clients: usize,
    seconds: f64,
) -> Result<Cell> {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (pool, farms) = (pool.clone(), farms.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut refused = 0;
                while Instant::now() < deadline {
                    let farm = farms[rand::rng().random_range(0..farms.len())];
                    let start = Instant::now();
                    match reserve_once(&pool, design, farm).await? {
                        Outcome::Reserved => latencies.push(start.elapsed()),
                        Outcome::Refused => refused += 1,
                        Outcome::Insufficient => bail!("the bench farm ran out of credits"),
                    }
                }
                Ok::<_, anyhow::Error>((latencies, refused))
            })
        })
        .collect();
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut refused = 0;
    for t in tasks {
        let (l, r) = t.await??;
        latencies.extend(l);
        refused += r;
    }
    let elapsed = started.elapsed().as_secs_f64().max(seconds);
    latencies.sort();
    Ok(Cell {
        per_second: latencies.len() as f64 / elapsed,
        p50: percentile(&latencies, 50.0),
        p99: percentile(&latencies, 99.0),
        refused,
    })
}

/// The cell whose rate is the median of `cells`' (its latencies come with it).
fn median_cell(cells: Vec<Cell>) -> Cell {
    let rate = median(cells.iter().map(|c| c.per_second).collect());
    cells
        .into_iter()
        .min_by(|a, b| {
            (a.per_second - rate)
                .abs()
                .total_cmp(&(b.per_second - rate).abs())
        })
        .expect("at least one repetition")
}

/// A row of the table: each repetition measures every design once, in turn, so a drift of this
/// noisy machine moves all of them alike; a ratio is the median of the repetitions' ratios
/// (side by side), not the ratio of two medians taken minutes apart.
struct Row {
    bare: Cell,
    ours: Cell,
    unchained: Cell,
    naive: Cell,
    nolock: Cell,
    ours_to_bare: f64,
    ours_to_naive: f64,
    chain_to_no_chain: f64,
}

/// Where a row's designs run: the app and owner pools of the main database, the app pool of the
/// database with the chain off, and the farms of each.
struct Setup<'a> {
    app: &'a Db,
    owner: &'a Db,
    unchained: &'a Db,
    farms: &'a Arc<Vec<Uuid>>,
    unchained_farms: &'a Arc<Vec<Uuid>>,
}

async fn row(at: &Setup<'_>, clients: usize, mode: &Mode) -> Result<Row> {
    // one repetition: the designs in this order, each measured once
    const BARE: usize = 0;
    const OURS: usize = 1;
    const UNCHAINED: usize = 2;
    const NAIVE: usize = 3;
    const NOLOCK: usize = 4;
    let designs = [
        (at.app, Design::BareUpdate, at.farms),
        (at.app, Design::Ours, at.farms),
        (at.unchained, Design::Ours, at.unchained_farms),
        (at.owner, Design::NaiveLock, at.farms),
        (at.owner, Design::NaiveNoLock, at.farms),
    ];
    let mut reps = Vec::new();
    for _ in 0..mode.reps {
        let mut cells = Vec::with_capacity(designs.len());
        for (pool, design, farms) in designs {
            cells.push(measure(pool, design, farms.clone(), clients, mode.seconds).await?);
        }
        reps.push(cells);
    }
    let column = |i: usize| median_cell(reps.iter().map(|r| r[i]).collect());
    let paired = |i: usize, j: usize| {
        median(
            reps.iter()
                .map(|r| ratio(r[i].per_second, r[j].per_second))
                .collect(),
        )
    };
    Ok(Row {
        bare: column(BARE),
        ours: column(OURS),
        unchained: column(UNCHAINED),
        naive: column(NAIVE),
        nolock: column(NOLOCK),
        ours_to_bare: paired(OURS, BARE),
        ours_to_naive: paired(OURS, NAIVE),
        chain_to_no_chain: paired(OURS, UNCHAINED),
    })
}

/// Every client tries `attempts` reservations on a farm holding `credits`; returns how many
/// succeeded and how many the schema refused.
async fn oversell(
    pool: &Db,
    design: Design,
    farm: Uuid,
    clients: usize,
    attempts: usize,
) -> Result<(usize, usize)> {
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let (mut ok, mut refused) = (0, 0);
                for _ in 0..attempts {
                    match reserve_once(&pool, design, farm).await? {
                        Outcome::Reserved => ok += 1,
                        Outcome::Refused => refused += 1,
                        Outcome::Insufficient => {}
                    }
                }
                Ok::<_, anyhow::Error>((ok, refused))
            })
        })
        .collect();
    let mut totals = (0, 0);
    for t in tasks {
        let (ok, refused) = t.await??;
        totals.0 += ok;
        totals.1 += refused;
    }
    Ok(totals)
}

/// The same read-then-write on plain tables without the schema's rules: how much it oversells.
async fn oversell_plain(db: &TestDb, clients: usize, credits: i64, attempts: usize) -> Result<i64> {
    let owner = db.owner_client().await?;
    owner
        .batch_execute(
            "CREATE TABLE plain_farms (id int PRIMARY KEY, credit_balance bigint NOT NULL);
             CREATE TABLE plain_ledger (id bigserial PRIMARY KEY, delta bigint, balance_after bigint);
             GRANT SELECT, UPDATE ON plain_farms TO farmops_app;
             GRANT INSERT ON plain_ledger TO farmops_app;
             GRANT USAGE ON SEQUENCE plain_ledger_id_seq TO farmops_app;",
        )
        .await?;
    owner
        .query_typed(
            "INSERT INTO plain_farms VALUES (1, $1)",
            &[(&credits, Type::INT8)],
        )
        .await?;
    let pool = db.app_pool(clients)?;
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let c = pool.client().await?;
                let mut ok = 0i64;
                for _ in 0..attempts {
                    let balance: i64 = c
                        .query_typed("SELECT credit_balance FROM plain_farms WHERE id = 1", &[])
                        .await?[0]
                        .get(0);
                    if balance < 1 {
                        continue;
                    }
                    let after = balance - 1;
                    c.batch_execute("BEGIN").await?;
                    c.query_typed(
                        "UPDATE plain_farms SET credit_balance = $1 WHERE id = 1",
                        &[(&after, Type::INT8)],
                    )
                    .await?;
                    c.query_typed(
                        "INSERT INTO plain_ledger (delta, balance_after) VALUES (-1, $1)",
                        &[(&after, Type::INT8)],
                    )
                    .await?;
                    c.batch_execute("COMMIT").await?;
                    ok += 1;
                }
                Ok::<_, anyhow::Error>(ok)
            })
        })
        .collect();
    let mut sold = 0;
    for t in tasks {
        sold += t.await??;
    }
    Ok(sold - credits)
}

pub async fn run(mode: &Mode) -> Result<()> {
    let db = TestDb::new().await?;
    if !mode.chain {
        crate::without_chain(&db).await?;
    }
    let pool = db.app_pool(64)?;
    let warm: Vec<_> = futures::future::join_all((0..64).map(|_| pool.client())).await;
    warm.into_iter().collect::<Result<Vec<_>, _>>()?;
    let plenty = 1_000_000_000;
    let hot = Arc::new(vec![db.farm("hot", plenty).await?]);
    let mut spread = Vec::new();
    for i in 0..100 {
        spread.push(db.farm(&format!("farm {i}"), plenty).await?);
    }
    let spread = Arc::new(spread);
    // Ours again, side by side, in a database with the evidence chain's triggers off: what the
    // chain costs (#19: within 15% at 32 clients on the hot farm).
    let unchained_db = TestDb::new().await?;
    crate::without_chain(&unchained_db).await?;
    let unchained = unchained_db.app_pool(64)?;
    let unchained_hot = Arc::new(vec![unchained_db.farm("hot", plenty).await?]);
    let mut unchained_spread = Vec::new();
    for i in 0..100 {
        unchained_spread.push(unchained_db.farm(&format!("farm {i}"), plenty).await?);
    }
    let unchained_spread = Arc::new(unchained_spread);
    measure(&unchained, Design::Ours, unchained_spread.clone(), 64, 0.5).await?;
    // The naive designs write the balance, the run and the ledger themselves, which the
    // application role may no longer do (migration 0060): they run as the owner, under the
    // same triggers and checks.
    let owner = db.owner_pool(64)?;
    let warm: Vec<_> = futures::future::join_all((0..64).map(|_| owner.client())).await;
    warm.into_iter().collect::<Result<Vec<_>, _>>()?;
    let pool_for = |design| {
        if matches!(design, Design::Ours | Design::BareUpdate) {
            &pool
        } else {
            &owner
        }
    };

    // the physical limit: a plain table with one row per farm, no rules
    let admin = db.owner_client().await?;
    admin
        .batch_execute(
            "CREATE TABLE bench_bare (id uuid PRIMARY KEY, n bigint NOT NULL DEFAULT 0);
             GRANT SELECT, UPDATE ON bench_bare TO farmops_app;",
        )
        .await?;
    for farm in hot.iter().chain(spread.iter()) {
        admin
            .query_typed(
                "INSERT INTO bench_bare (id) VALUES ($1)",
                &[(farm, Type::UUID)],
            )
            .await?;
    }

    // warm every connection (plan caches, trigger functions compiled per backend)
    for design in [
        Design::Ours,
        Design::NaiveLock,
        Design::NaiveNoLock,
        Design::BareUpdate,
    ] {
        measure(pool_for(design), design, spread.clone(), 64, 0.5).await?;
    }

    println!("## 1. Credit reservation under contention (1 credit per reservation)\n");
    println!(
        "| farms | clients | bare update /s | ours /s | ours ÷ bare | naive lock /s | ours ÷ naive | ours p50 / p99 ms | naive lock p50 / p99 ms | no-lock /s | no-lock refused by schema | ours, chain off /s | chain ÷ no chain |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (label, farms, unchained_farms) in [
        ("1 hot", &hot, &unchained_hot),
        ("100", &spread, &unchained_spread),
    ] {
        let at = Setup {
            app: &pool,
            owner: &owner,
            unchained: &unchained,
            farms,
            unchained_farms,
        };
        for clients in [1, 8, 32, 64] {
            let r = row(&at, clients, mode).await?;
            println!(
                "| {label} | {clients} | {:.0} | {:.0} | {:.2}x | {:.0} | {:.2}x | {:.2} / {:.2} | {:.2} / {:.2} | {:.0} | {} | {:.0} | {:.2}x |",
                r.bare.per_second,
                r.ours.per_second,
                r.ours_to_bare,
                r.naive.per_second,
                r.ours_to_naive,
                ms(r.ours.p50),
                ms(r.ours.p99),
                ms(r.naive.p50),
                ms(r.naive.p99),
                r.nolock.per_second,
                r.nolock.refused,
                r.unchained.per_second,
                r.chain_to_no_chain,
            );
        }
    }
    println!(
        "\nEach repetition measures the five designs in turn; a ratio is the median of the repetitions' ratios.\n\nTargets at 32 clients on the hot farm: ours ≥ 2x naive lock; ours ≥ 0.3x the bare update; the evidence chain costs at most 15% (chain ÷ no chain ≥ 0.85x).\n"
    );

    let (clients, credits, attempts) = (32, 200, 12);
    println!(
        "Oversell: {clients} clients × {attempts} attempts on a farm with {credits} credits\n"
    );
    println!("| design | reservations granted | oversold | refused by schema |");
    println!("|---|---|---|---|");
    for design in [Design::Ours, Design::NaiveLock, Design::NaiveNoLock] {
        let farm = db.farm("oversell", credits).await?;
        let (ok, refused) = oversell(pool_for(design), design, farm, clients, attempts).await?;
        let tx = pool.tenant(farm).await?;
        let audit = credits::audit_ledger(&tx).await?;
        drop(tx);
        if !audit.holds {
            bail!("ledger invariant broken for {design:?}: {audit:?}");
        }
        let name = match design {
            Design::Ours => "(a) ours",
            Design::NaiveLock => "(b) naive lock",
            Design::NaiveNoLock => "(c) no lock, our schema",
            Design::BareUpdate => unreachable!("not an oversell design"),
        };
        println!(
            "| {name} | {ok} | {} | {refused} |",
            (ok as i64 - credits).max(0)
        );
    }
    let oversold = oversell_plain(&db, clients, credits, attempts).await?;
    println!(
        "| (c) no lock, plain tables | {} | {oversold} | 0 (no rules) |",
        credits + oversold
    );
    println!("\nTarget: zero oversell for (a) and (b).\n");
    Ok(())
}
