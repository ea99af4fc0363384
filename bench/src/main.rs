//! `farmops-bench [--short] [--only <section>]...`: measures the hot paths against the naive
//! designs in the same run, on the local PostgreSQL (scripts/setup-postgres.sh), and prints one Markdown table per
//! section with medians and ratios. It never fails on a number: targets are printed beside
//! the figures. `--short` runs every section briefly (CI keeps it from rotting);
//! `--only <section>` (reserve, turn, retrieval, evidence, coldstart, clinical, holds, faults;
//! repeatable) runs just those; `--seconds S` and `--reps N` set each cell's length and
//! repetitions. The faults section (`--seed`, `--ops`, `--restart-cluster`: docs/faults.md) is
//! the one that can fail the bench: an anomaly in its history exits non-zero.

mod clinical;
mod coldstart;
mod evidence;
mod holds;
mod reserve;
mod retrieval;
mod stats;
mod turn;

use anyhow::{Context, Result, bail};

pub struct Mode {
    /// Seconds per measured cell.
    pub seconds: f64,
    /// Repetitions per cell (the median is reported).
    pub reps: usize,
    /// The evidence chain's triggers on (default); `--without-chain` turns them off in the
    /// sections' databases (reserve, turn), to measure what the chain costs.
    pub chain: bool,
}

/// Turns the evidence chain's triggers off in a benchmark database (as the owner).
pub async fn without_chain(db: &farmops::testing::TestDb) -> Result<()> {
    let owner = db.owner_client().await?;
    owner
        .batch_execute(
            "ALTER TABLE credit_ledger DISABLE TRIGGER evidence_chain;
             ALTER TABLE ai_runs DISABLE TRIGGER evidence_chain_closed;
             ALTER TABLE assistant_drafts DISABLE TRIGGER evidence_chain;
             ALTER TABLE ai_recommendations DISABLE TRIGGER evidence_chain;",
        )
        .await?;
    for t in [
        "mortality_events",
        "feed_logs",
        "sales",
        "expenses",
        "water_logs",
        "weight_records",
        "symptom_reports",
        "notes",
        "tasks",
    ] {
        owner
            .batch_execute(&format!("ALTER TABLE {t} DISABLE TRIGGER evidence_chain"))
            .await?;
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let short = args.iter().any(|a| a == "--short");
    let chain = !args.iter().any(|a| a == "--without-chain");
    let mut mode = if short {
        Mode {
            seconds: 0.3,
            reps: 1,
            chain,
        }
    } else {
        Mode {
            seconds: 3.0,
            reps: 3,
            chain,
        }
    };
    // `--seconds S` and `--reps N` override the mode's cell length and repetitions.
    for w in args.windows(2) {
        match w[0].as_str() {
            "--seconds" => mode.seconds = w[1].parse().context("--seconds takes a number")?,
            "--reps" => mode.reps = w[1].parse().context("--reps takes a whole number")?,
            _ => {}
        }
    }
    println!(
        "# FarmOps benchmark ({} mode{})\n",
        if short { "short" } else { "full" },
        if chain { "" } else { ", evidence chain off" }
    );
    println!(
        "machine: {} cores; PostgreSQL on loopback; medians of {} repetition(s)\n",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        mode.reps
    );
    let only: Vec<&str> = args
        .windows(2)
        .filter(|w| w[0] == "--only")
        .map(|w| w[1].as_str())
        .collect();
    let wanted = |section: &str| only.is_empty() || only.contains(&section);
    if wanted("reserve") {
        reserve::run(&mode).await?;
    }
    if wanted("turn") {
        turn::run(&mode).await?;
    }
    if wanted("retrieval") {
        retrieval::run(&mode, short).await?;
    }
    if wanted("evidence") {
        evidence::run(&mode).await?;
    }
    if wanted("coldstart") {
        coldstart::run(&mode).await?;
    }
    if wanted("clinical") {
        clinical::run(&mode).await?;
    }
    if wanted("holds") {
        holds::run().await?;
    }
    if wanted("faults") {
        let anomalies = farmops_bench::faults::run(&args, short).await?;
        if anomalies > 0 {
            bail!("the faults history has {anomalies} anomalies");
        }
    }
    Ok(())
}
