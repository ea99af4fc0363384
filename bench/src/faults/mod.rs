//! Section 8: faults and load. A seeded history of operations over many farms from many
//! connections, through the shared crate's real functions, while backends are killed
//! mid-transaction, statements time out and (full mode, on a private cluster) the cluster
//! restarts; then a final reconcile and a check of the history against the database
//! ([`check`]). See docs/faults.md.
//!
//! `farmops-bench --only faults [--short] [--seed N] [--ops N] [--workers N] [--farms N]
//! [--restart-cluster PGDATA]`: the database is the one `farmops::testing` points at
//! (`FARMOPS_TEST_PORT`, `FARMOPS_TEST_ADMIN_URL`); `--restart-cluster` restarts the cluster
//! of that data directory halfway through, so point both at a private cluster, never a shared
//! one.

pub mod check;
pub mod history;
pub mod inject;
pub mod races;
pub mod snapshot;
pub mod workload;

use std::{
    fmt::Write as _,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use chrono::Utc;
use farmops::{
    config::DatabaseConfig,
    db::{Db, Tls, UrlPassword},
    farm::budgets::{self, BudgetChange, CapChange},
    reconcile,
    testing::TestDb,
};

pub use check::Anomaly;
pub use history::History;

#[derive(Debug, Clone)]
pub struct Config {
    pub seed: u64,
    pub ops: usize,
    pub workers: usize,
    pub farms: usize,
    /// How often the killer strikes (on average).
    pub kill_every: Duration,
    /// A private cluster's data directory to restart halfway through.
    pub restart: Option<PathBuf>,
}

impl Config {
    /// From the command line; `short`: a few hundred operations.
    pub fn from_args(args: &[String], short: bool) -> Result<Config> {
        let value = |flag: &str| args.windows(2).find(|w| w[0] == flag).map(|w| w[1].clone());
        let number = |flag: &str, default: u64| -> Result<u64> {
            value(flag).map_or(Ok(default), |v| {
                v.parse().with_context(|| format!("{flag} {v}"))
            })
        };
        Ok(Config {
            seed: number("--seed", rand::random::<u32>().into())?,
            ops: usize::try_from(number("--ops", if short { 400 } else { 50_000 })?)?,
            workers: usize::try_from(number("--workers", 32)?)?,
            farms: usize::try_from(number("--farms", 20)?)?,
            kill_every: Duration::from_millis(number("--kill-every-ms", 20)?),
            restart: value("--restart-cluster").map(PathBuf::from),
        })
    }
}

/// What a run produced: the history, the anomalies, and notes for the table.
pub struct Report {
    pub history: History,
    pub anomalies: Vec<Anomaly>,
    pub notes: Vec<String>,
}

fn pool(url: &str, size: usize) -> Result<Db> {
    let mut config = DatabaseConfig::for_url(url);
    config.pool_size = size;
    config.connect_timeout = Duration::from_secs(10);
    Ok(Db::connect(&config, Arc::new(UrlPassword), Tls::Disabled)?)
}

/// Farms with credits, their owner and two members on a daily budget.
async fn setup(db: &TestDb, farms: usize) -> Result<Vec<uuid::Uuid>> {
    let mut ids = Vec::new();
    for i in 0..farms {
        let farm = db.farm(&format!("faults {i}"), 200).await?;
        db.member(farm, workload::USER, "owner").await?;
        db.member(farm, "faults-owner", "owner").await?;
        for m in workload::BUDGET_MEMBERS {
            db.member(farm, m, "worker").await?;
            let tx = db.owner.tenant(farm).await?;
            let cap = BudgetChange {
                daily: CapChange::Set(40),
                monthly: CapChange::Keep,
            };
            budgets::set_as_operator(&tx, "faults", m, cap).await?;
            tx.commit().await?;
        }
        ids.push(farm);
    }
    Ok(ids)
}

/// Runs the history and checks it.
pub async fn run_history(cfg: &Config) -> Result<Report> {
    let db = TestDb::new().await?;
    let farms = setup(&db, cfg.farms).await?;
    let named = |url: String| format!("{url}?application_name={}", inject::APP_NAME);
    let ctx = Arc::new(workload::Ctx {
        app: pool(&named(db.app_url()), cfg.workers)?,
        slow: pool(
            &format!(
                "{}&options=-c%20statement_timeout%3D40",
                named(db.app_url())
            ),
            8,
        )?,
        owner: pool(&named(db.owner_url()), 8)?,
        farms: farms.clone(),
        seed: cfg.seed,
        total: cfg.ops,
        done: AtomicUsize::new(0),
        max_run: Duration::from_secs(3),
        latest_expiry: AtomicI64::new(0),
        met: Mutex::new(Default::default()),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let counts: inject::Counts = Default::default();
    let mut notes = Vec::new();
    let faults = vec![
        tokio::spawn(inject::killer(
            db.name.clone(),
            cfg.seed,
            cfg.kill_every,
            stop.clone(),
            counts.clone(),
        )),
        tokio::spawn(inject::locker(
            db.name.clone(),
            farms.clone(),
            cfg.seed,
            Duration::from_millis(100),
            Duration::from_millis(60),
            stop.clone(),
            counts.clone(),
        )),
    ];
    let started = Instant::now();
    let workers: Vec<_> = (0..cfg.workers)
        .map(|w| tokio::spawn(workload::worker(ctx.clone(), w)))
        .collect();
    if let Some(pgdata) = &cfg.restart {
        while ctx.done.load(Ordering::Relaxed) < cfg.ops / 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let took = inject::restart_cluster(pgdata).await?;
        *counts
            .lock()
            .unwrap()
            .entry("cluster restart (pg_ctl -m fast)".into())
            .or_default() += 1;
        notes.push(format!(
            "cluster restarted after {} operations; pg_ctl restart took {} ms",
            cfg.ops / 2,
            took.as_millis()
        ));
    }
    let mut events = Vec::new();
    for w in workers {
        events.extend(w.await?);
    }
    let seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for f in faults {
        f.await?;
    }
    // the final reconcile: once every granted lot has expired, every hold and expired lot
    let latest = ctx.latest_expiry.load(Ordering::Relaxed) - Utc::now().timestamp_millis();
    if latest > 0 {
        tokio::time::sleep(Duration::from_millis(latest as u64 + 50)).await;
    }
    let mut passes = 0;
    loop {
        passes += 1;
        match reconcile::run_at(&ctx.app, Utc::now() + chrono::Duration::hours(1)).await {
            Ok(o) if o.farms_failed == 0 => break,
            _ if passes < 10 => tokio::time::sleep(Duration::from_millis(200)).await,
            other => anyhow::bail!("the final reconcile keeps failing: {other:?}"),
        }
    }
    let client = farmops::testing::admin_client(&db.name).await?;
    let snapshot = snapshot::read(&client, &farms).await?;
    let mut faults = counts.lock().unwrap().clone();
    faults.extend(ctx.met.lock().unwrap().clone());
    let history = History {
        events,
        faults,
        seconds,
    };
    let anomalies = check::check(&history, &snapshot);
    notes.push(format!(
        "final state: {} runs, {} lots, {} drafts over {} farms; final reconcile in {passes} pass(es)",
        snapshot.runs.len(),
        snapshot.lots.len(),
        snapshot.drafts.len(),
        snapshot.farms.len()
    ));
    Ok(Report {
        history,
        anomalies,
        notes,
    })
}

/// The one table: operations by kind and outcome, faults by kind, operations per second, and
/// the anomalies, each described below it.
pub fn table(cfg: &Config, r: &Report) -> String {
    let h = &r.history;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "seed {}, {} workers (connections), {} farms{}\n",
        cfg.seed,
        cfg.workers,
        cfg.farms,
        if cfg.restart.is_some() {
            ", cluster restart halfway"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "| | kind | total | committed | refused | failed | answer lost |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for (kind, [c, rf, f, u]) in h.by_kind() {
        let _ = writeln!(
            out,
            "| op | {kind} | {} | {c} | {rf} | {f} | {u} |",
            c + rf + f + u
        );
    }
    for (kind, n) in &h.faults {
        let _ = writeln!(out, "| fault | {kind} | {n} | | | | |");
    }
    let _ = writeln!(
        out,
        "| total | operations: {} in {:.1} s | **{:.0} ops/s** | | | | |",
        h.ops(),
        h.seconds,
        h.ops() as f64 / h.seconds.max(1e-9)
    );
    let _ = writeln!(
        out,
        "| check | **anomalies: {}** | | | | | |",
        r.anomalies.len()
    );
    for note in &r.notes {
        let _ = writeln!(out, "\n{note}");
    }
    for a in &r.anomalies {
        let _ = writeln!(out, "\n- anomaly ({}): {}", a.kind, a.detail);
    }
    out
}

/// The bench section: prints the table; the number of anomalies (non-zero fails the bench).
pub async fn run(args: &[String], short: bool) -> Result<usize> {
    let cfg = Config::from_args(args, short)?;
    println!("## 8. Faults and load: a seeded history checked against the ledger\n");
    let report = run_history(&cfg).await?;
    println!("{}", table(&cfg, &report));
    Ok(report.anomalies.len())
}
