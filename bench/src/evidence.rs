//! Section 4: the evidence page, 50 runs with their ledger legs, for a farm with 100,000 runs.
//!
//! Ours: what the evidence function does per request (`membership::require_role`,
//! `evidence::evidence_page`: the page statement with every run's children, the farm's latest
//! ledger checkpoint, the ledger rows after it; then the JSON body), on a farm whose ledger the
//! reconcile job has checkpointed, with 20 runs written after the checkpoint.
//! Ours before any checkpoint: the same request on an identical farm the job has not reached
//! yet (the totals and the invariant then sum the farm's whole ledger).
//! Naive: the page of runs, then one query per run for its legs (N+1), then the totals and
//! the invariant summed over the whole ledger, as a first version would.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use farmops::{
    credits::{self, Feature, NewRun, Settlement},
    db::{Db, Type},
    evidence::{self, EvidenceQuery},
    membership::{self, Role},
    testing::TestDb,
};
use uuid::Uuid;

use crate::{
    Mode,
    stats::{ms, percentile, ratio},
};

const PAGE: i64 = 50;
const START_BALANCE: i64 = 10_000_000;

/// `runs` settled runs (reserve 2, settle with a refund of 1), chained, in three statements.
async fn seed(db: &TestDb, farm: Uuid, runs: i64) -> Result<()> {
    let owner = db.owner_client().await?;
    let lot = farmops::testing::seeded_lot_debit(farm, runs);
    owner
        .batch_execute(&format!(
            "BEGIN;
             CREATE TEMP TABLE gen ON COMMIT DROP AS
               SELECT n, gen_random_uuid() AS id FROM generate_series(1, {runs}) n;
             INSERT INTO ai_runs (farm_id, id, feature, model, user_id, status, credits_reserved,
                                  credits_charged, input_tokens, output_tokens, latency_ms,
                                  request_summary, response_summary, created_at, finished_at)
               SELECT '{farm}', id, CASE WHEN n % 3 = 0 THEN 'embed' ELSE 'chat' END,
                      'offline-farm-assistant', 'bench-owner', 'succeeded', 2, 1, 120, 30, 45,
                      'run ' || n, 'one draft proposed',
                      now() - n * interval '1 minute',
                      now() - n * interval '1 minute' + interval '1 second'
                 FROM gen;
             INSERT INTO credit_ledger (farm_id, entry_type, delta, balance_after, ai_run_id, actor)
               SELECT '{farm}', k.t, k.d,
                      {START_BALANCE} - n + CASE k.t WHEN 'reserve' THEN -1 ELSE 0 END, id, 'system'
                 FROM gen CROSS JOIN (VALUES (1, 'reserve', -2), (2, 'settle', 1)) k(o, t, d)
                ORDER BY n, k.o;
             UPDATE farms SET credit_balance = {START_BALANCE} - {runs} WHERE id = '{farm}';
             {lot}
             COMMIT;"
        ))
        .await?;
    Ok(())
}

async fn settled_run(db: &Db, farm: Uuid, i: usize) -> Result<()> {
    let tx = db.tenant(farm).await?;
    let r = credits::reserve_credits(
        &tx,
        &NewRun {
            feature: Feature::Chat,
            model: "offline-farm-assistant",
            user_id: Some("bench-owner"),
            credits: 2,
            request_summary: Some(&format!("after the checkpoint {i}")),
        },
    )
    .await?;
    let s = Settlement {
        credits_charged: 1,
        ..Default::default()
    };
    credits::settle_run(&tx, r.run_id, &s).await?;
    tx.commit().await?;
    Ok(())
}

/// One evidence request as the function serves it: (time, runs on the page, round trips).
async fn ours(db: &Db, farm: Uuid) -> Result<(Duration, usize, u64)> {
    let trips = db.round_trips();
    let start = Instant::now();
    let tx = db.tenant(farm).await?;
    membership::require_role(&tx, "bench-owner", "read", Role::may_read_evidence).await?;
    let page = evidence::evidence_page(
        &tx,
        &EvidenceQuery {
            limit: PAGE,
            ..Default::default()
        },
    )
    .await?;
    let body = serde_json::to_vec(&page)?;
    tx.commit().await?;
    let elapsed = start.elapsed();
    if !page.ledger.holds || body.is_empty() {
        bail!("ledger invariant broken: {:?}", page.ledger);
    }
    Ok((elapsed, page.runs.len(), db.round_trips() - trips))
}

/// The first version: page, legs per run, whole-ledger totals and invariant.
/// (time, runs on the page, round trips).
async fn naive(db: &Db, farm: Uuid) -> Result<(Duration, usize, u64)> {
    let c = db.client().await?;
    let start = Instant::now();
    c.batch_execute(&format!(
        "BEGIN; SELECT set_config('app.farm_id', '{farm}', true)"
    ))
    .await?;
    let runs = c
        .query_typed(
            "SELECT id, feature, model, user_id, status, credits_reserved, credits_charged,
                    input_tokens, output_tokens, latency_ms, request_summary, response_summary,
                    created_at
               FROM ai_runs WHERE farm_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
            &[(&farm, Type::UUID), (&PAGE, Type::INT8)],
        )
        .await?;
    let mut legs = 0;
    for run in &runs {
        let id: Uuid = run.get(0);
        legs += c
            .query_typed(
                "SELECT id, entry_type, delta, balance_after, actor, reason, created_at
                   FROM credit_ledger WHERE farm_id = $1 AND ai_run_id = $2 ORDER BY id",
                &[(&farm, Type::UUID), (&id, Type::UUID)],
            )
            .await?
            .len();
    }
    let totals = c
        .query_typed(
            "SELECT entry_type, sum(delta)::bigint, count(*) FROM credit_ledger
              WHERE farm_id = $1 GROUP BY entry_type",
            &[(&farm, Type::UUID)],
        )
        .await?;
    let invariant = c
        .query_typed(
            "SELECT f.credit_balance, sum(l.delta)::bigint,
                    (SELECT balance_after FROM credit_ledger WHERE farm_id = f.id ORDER BY id DESC LIMIT 1)
               FROM farms f JOIN credit_ledger l ON l.farm_id = f.id
              WHERE f.id = $1 GROUP BY f.id",
            &[(&farm, Type::UUID)],
        )
        .await?;
    c.batch_execute("COMMIT").await?;
    let elapsed = start.elapsed();
    let (balance, sum): (i64, i64) = (invariant[0].get(0), invariant[0].get(1));
    if balance != sum || legs < runs.len() || totals.is_empty() {
        bail!("naive evidence read inconsistent: balance {balance}, sum {sum}, {legs} legs");
    }
    // BEGIN + tenant, the page, one per run, totals, invariant, COMMIT
    Ok((elapsed, runs.len(), 5 + runs.len() as u64))
}

pub async fn run(mode: &Mode) -> Result<()> {
    let runs: i64 = if mode.reps == 1 { 20_000 } else { 100_000 };
    let db = TestDb::new().await?;
    let checkpointed = db.farm("evidence, checkpointed", START_BALANCE).await?;
    let unchecked = db
        .farm("evidence, no checkpoint yet", START_BALANCE)
        .await?;
    let seeding = Instant::now();
    // the farm the job has not reached first: the checkpointed farm's history is then the
    // recent end of the ledger, as the checkpoint policy keeps it (rows or age)
    for farm in [unchecked, checkpointed] {
        db.member(farm, "bench-owner", "owner").await?;
        seed(&db, farm, runs).await?;
    }
    db.owner_client()
        .await?
        .batch_execute("ANALYZE ai_runs; ANALYZE credit_ledger;")
        .await?;
    let pool = db.app_pool(2)?;
    // what the reconcile job does for a busy farm, then more activity after it
    let tx = pool.tenant(checkpointed).await?;
    let folded = credits::checkpoint_ledger(&tx).await?;
    tx.commit().await?;
    for i in 0..20 {
        settled_run(&pool, checkpointed, i).await?;
        settled_run(&pool, unchecked, i).await?;
    }
    let seeded = seeding.elapsed();
    let tx = pool.tenant(unchecked).await?;
    let (_, audit) = evidence::farm_ledger(&tx).await?;
    drop(tx);
    if audit.checkpoint.is_some() {
        bail!("the unchecked farm has a checkpoint");
    }

    let requests = if mode.reps == 1 { 20 } else { 200 };
    for _ in 0..3 {
        ours(&pool, checkpointed).await?;
        ours(&pool, unchecked).await?;
        naive(&pool, unchecked).await?;
    }
    let mut times: [Vec<Duration>; 3] = Default::default();
    let mut trips = [0u64; 3];
    // interleaved, so machine noise hits every design alike
    for _ in 0..requests {
        for (i, result) in [
            ours(&pool, checkpointed).await?,
            ours(&pool, unchecked).await?,
            naive(&pool, unchecked).await?,
        ]
        .into_iter()
        .enumerate()
        {
            if i64::try_from(result.1) != Ok(PAGE) {
                bail!("a page of {} runs", result.1);
            }
            times[i].push(result.0);
            trips[i] = result.2;
        }
    }
    times.iter_mut().for_each(|t| t.sort());

    println!("## 4. Evidence page: {PAGE} runs with their ledger legs, farm with {runs} runs\n");
    println!(
        "Two identical farms of {runs} settled runs ({} ledger rows each, seeded in {:.1} s, \
         {folded} rows checkpointed), 20 runs after the checkpoint; {requests} requests per \
         design, interleaved; each request is a whole transaction (membership, page, totals, \
         invariant, JSON body for ours).\n",
        2 * runs + 1,
        seeded.as_secs_f64()
    );
    println!("| design | round trips | p50 ms | p99 ms | ÷ ours p50 |");
    println!("|---|---|---|---|---|");
    let ours_p50 = ms(percentile(&times[0], 50.0));
    for (i, name) in [
        "ours (`evidence_page`, checkpoint + tail)",
        "ours before the farm's first checkpoint (whole-ledger sums)",
        "naive (legs per run, whole-ledger totals)",
    ]
    .into_iter()
    .enumerate()
    {
        let (t, statements) = (&times[i], trips[i]);
        let p50 = ms(percentile(t, 50.0));
        println!(
            "| {name} | {statements} | {p50:.2} | {:.2} | {:.1}x |",
            ms(percentile(t, 99.0)),
            ratio(p50, ours_p50)
        );
    }
    println!("\nTarget: ours p50 < 20 ms.\n");
    Ok(())
}
