//! The faults history in the test suite (short mode, issue 20): 5,000 operations over 20 farms
//! from 32 connections while backends are killed mid-transaction and statements time out; the
//! checker must find no anomaly. Seeded: `FARMOPS_FAULTS_SEED=N` replays a failing seed (the
//! failure message prints it); otherwise each run draws a new one.

use std::time::Duration;

use farmops_bench::faults::{self, Config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_with_killed_connections_has_no_anomaly() {
    let seed: u64 = std::env::var("FARMOPS_FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::random::<u32>().into());
    farmops::test_note!("faults seed {seed} (replay: FARMOPS_FAULTS_SEED={seed})");
    let cfg = Config {
        seed,
        ops: 5_000,
        workers: 32,
        farms: 20,
        kill_every: Duration::from_millis(15),
        restart: None,
    };
    let report = faults::run_history(&cfg).await.unwrap_or_else(|e| {
        panic!("seed {seed}: the history did not run: {e:?}");
    });
    let table = faults::table(&cfg, &report);
    farmops::test_note!("{table}");
    assert!(
        report.history.ops() >= 5_000,
        "seed {seed}: {} operations",
        report.history.ops()
    );
    let killed: u64 = report
        .history
        .faults
        .iter()
        .filter(|(k, _)| k.starts_with("backend killed"))
        .map(|(_, n)| n)
        .sum();
    assert!(killed > 0, "seed {seed}: no backend was killed\n{table}");
    assert!(
        report.anomalies.is_empty(),
        "seed {seed} (replay: FARMOPS_FAULTS_SEED={seed}): {} anomalies\n{table}",
        report.anomalies.len()
    );
}
