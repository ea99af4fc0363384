//! `farmops-bench [--short] [--only <section>]`: measures the hot paths against the naive designs in the same
//! run, on the local PostgreSQL (scripts/setup-postgres.sh), and prints one Markdown table per
//! section with medians and ratios. It never fails on a number: targets are printed beside
//! the figures. `--short` runs every section briefly (CI keeps it from rotting). `--only`
//! runs one section: `reserve`, `turn`, `retrieval` or `coldstart`.

mod coldstart;
mod reserve;
mod retrieval;
mod stats;
mod turn;

use anyhow::Result;

pub struct Mode {
    /// Seconds per measured cell.
    pub seconds: f64,
    /// Repetitions per cell (the median is reported).
    pub reps: usize,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let short = args.iter().any(|a| a == "--short");
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned());
    let section = |name: &str| only.as_deref().is_none_or(|o| o == name);
    let mode = if short {
        Mode {
            seconds: 0.3,
            reps: 1,
        }
    } else {
        Mode {
            seconds: 3.0,
            reps: 3,
        }
    };
    println!(
        "# FarmOps benchmark ({} mode)\n",
        if short { "short" } else { "full" }
    );
    println!(
        "machine: {} cores; PostgreSQL on loopback; medians of {} repetition(s)\n",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        mode.reps
    );
    if section("reserve") {
        reserve::run(&mode).await?;
    }
    if section("turn") {
        turn::run(&mode).await?;
    }
    if section("retrieval") {
        retrieval::run(&mode, short).await?;
    }
    if section("coldstart") {
        coldstart::run(&mode).await?;
    }
    Ok(())
}
