//! The faults: a killer terminating random application backends (`pg_terminate_backend`),
//! most often one idle in a transaction (between a statement and its COMMIT), else one
//! running a statement or idle in the pool; a locker holding a random farm's row for longer
//! than the slow pool's `statement_timeout`; and, when given a private cluster's data
//! directory, a fast restart of that cluster (`pg_ctl restart -m fast`).

use std::{
    collections::BTreeMap,
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use rand::{Rng, SeedableRng, rngs::StdRng};
use uuid::Uuid;

/// The `application_name` of every connection the workers use: what the killer aims at.
pub const APP_NAME: &str = "farmops-faults";

pub type Counts = Arc<Mutex<BTreeMap<String, u64>>>;

fn count(counts: &Counts, kind: &str) {
    *counts.lock().unwrap().entry(kind.into()).or_default() += 1;
}

/// A superuser connection to `database`, retried while the cluster restarts.
async fn admin(database: &str, stop: &AtomicBool) -> Option<tokio_postgres::Client> {
    while !stop.load(Ordering::Relaxed) {
        if let Ok(c) = farmops::testing::admin_client(database).await {
            return Some(c);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Kills a random application backend every `every` until `stop`.
pub async fn killer(
    database: String,
    seed: u64,
    every: Duration,
    stop: Arc<AtomicBool>,
    counts: Counts,
) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6b696c6c);
    let mut client = None;
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(every.mul_f64(rng.random_range(0.5..1.5))).await;
        if client
            .as_ref()
            .is_none_or(|c: &tokio_postgres::Client| c.is_closed())
        {
            client = admin(&database, &stop).await;
        }
        let Some(c) = &client else { return };
        let states: Vec<&str> = if rng.random_bool(0.6) {
            vec!["idle in transaction"]
        } else {
            vec!["active", "idle", "idle in transaction"]
        };
        let killed = c
            .query(
                "SELECT state, pg_terminate_backend(pid) FROM pg_stat_activity
                  WHERE datname = current_database() AND application_name = $1
                    AND state = ANY($2) AND pid <> pg_backend_pid()
                  ORDER BY random() LIMIT 1",
                &[&APP_NAME, &states],
            )
            .await;
        if let Ok(rows) = killed {
            for r in rows.iter().filter(|r| r.get::<_, bool>(1)) {
                let state: Option<String> = r.get(0);
                let kind = match state.as_deref() {
                    Some("idle in transaction") => {
                        "backend killed between a statement and its COMMIT"
                    }
                    Some("active") => "backend killed mid-statement",
                    _ => "backend killed while idle in the pool",
                };
                count(&counts, kind);
            }
        }
    }
}

/// Holds a random farm's row locked for `hold` every `every` until `stop`: statements of
/// the slow pool queued behind it time out.
pub async fn locker(
    database: String,
    farms: Vec<Uuid>,
    seed: u64,
    every: Duration,
    hold: Duration,
    stop: Arc<AtomicBool>,
    counts: Counts,
) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6c6f636b);
    let mut client = None;
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(every).await;
        if client
            .as_ref()
            .is_none_or(|c: &tokio_postgres::Client| c.is_closed())
        {
            client = admin(&database, &stop).await;
        }
        let Some(c) = &client else { return };
        let farm = farms[rng.random_range(0..farms.len())];
        let locked = async {
            c.batch_execute("BEGIN").await?;
            c.query("SELECT 1 FROM farms WHERE id = $1 FOR UPDATE", &[&farm])
                .await?;
            tokio::time::sleep(hold).await;
            c.batch_execute("COMMIT").await
        };
        if locked.await.is_ok() {
            count(&counts, "farm row locked past the statement timeout");
        }
    }
}

/// `pg_ctl restart -m fast` of the private cluster at `pgdata` (as the `postgres` user when
/// run as root): every connection dies, the cluster is down until it has started again.
/// Returns how long it took.
pub async fn restart_cluster(pgdata: &Path) -> Result<Duration> {
    let pg_ctl = std::env::var("FARMOPS_PG_CTL")
        .unwrap_or_else(|_| "/usr/lib/postgresql/15/bin/pg_ctl".into());
    let log = pgdata.join("faults-restart.log");
    let args = [
        "-D",
        &pgdata.display().to_string(),
        "-l",
        &log.display().to_string(),
        "-m",
        "fast",
        "-w",
        "restart",
    ]
    .map(str::to_string);
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    let mut cmd = if root {
        let mut c = tokio::process::Command::new("runuser");
        c.args(["-u", "postgres", "--", &pg_ctl]);
        c
    } else {
        tokio::process::Command::new(&pg_ctl)
    };
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let started = Instant::now();
    let status = cmd.status().await.context("running pg_ctl restart")?;
    if !status.success() {
        bail!("pg_ctl restart of {} failed: {status}", pgdata.display());
    }
    Ok(started.elapsed())
}
