//! Section 2: the governance overhead of a chat turn, model time excluded.
//!
//! Ours: `chat::run_turn` with the offline model wrapped in a timer (model time subtracted),
//! writing one mortality draft per turn; round trips counted by the pool.
//! Naive: the same database work written the obvious way, one statement per round trip with
//! a locking reserve (`SELECT ... FOR UPDATE` transaction) and a locking settle.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use async_trait::async_trait;
use farmops::{
    chat::{self, ChatDeps, ChatLimits, TurnRequest},
    db::{Db, Type},
    model::{ChatModel, ChatRequest, ChatResponse, offline::OfflineChat},
    rag::NoRetrieval,
    testing::TestDb,
};
use uuid::Uuid;

use crate::{
    Mode,
    stats::{ms, percentile, ratio},
};

/// The offline model, timed: what the turn spends inside the model is measured and excluded.
struct TimedModel {
    inner: OfflineChat,
    nanos: AtomicU64,
}

#[async_trait]
impl ChatModel for TimedModel {
    fn model_id(&self) -> &str {
        self.inner.model_id()
    }
    async fn converse(&self, request: &ChatRequest) -> farmops::Result<ChatResponse> {
        let start = Instant::now();
        let response = self.inner.converse(request).await;
        self.nanos.fetch_add(
            u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        response
    }
}

const MESSAGE: &str = "3 birds died in pen 2";

/// Returns (time, round trips, hold legs).
async fn ours(db: &Db, model: &TimedModel, farm: Uuid) -> Result<(Duration, u64, u32)> {
    let limits = ChatLimits::default();
    let deps = ChatDeps {
        db,
        model,
        retriever: &NoRetrieval,
        limits: &limits,
    };
    let request = TurnRequest {
        message: MESSAGE.into(),
        conversation_id: None,
    };
    let (trips, model_ns) = (db.round_trips(), model.nanos.load(Ordering::Relaxed));
    let start = Instant::now();
    let turn = chat::run_turn(&deps, farm, "bench-owner", &request).await?;
    let elapsed = start.elapsed();
    if turn.drafts.len() != 1 {
        bail!("expected one draft per turn, got {}", turn.drafts.len());
    }
    let model_time = Duration::from_nanos(model.nanos.load(Ordering::Relaxed) - model_ns);
    Ok((
        elapsed.saturating_sub(model_time),
        db.round_trips() - trips,
        turn.usage.holds,
    ))
}

/// The same writes, one statement per round trip. Returns (time, round trips).
async fn naive(db: &Db, farm: Uuid) -> Result<(Duration, u64)> {
    let c = db.client().await?;
    let mut trips = 0u64;
    let start = Instant::now();
    let tenant = format!("BEGIN; SELECT set_config('app.farm_id', '{farm}', true)");
    macro_rules! q {
        ($sql:expr $(, $p:expr => $t:expr)*) => {{
            trips += 1;
            c.query_typed($sql, &[$((&$p as &(dyn tokio_postgres::types::ToSql + Sync), $t)),*]).await?
        }};
    }
    macro_rules! batch {
        ($sql:expr) => {{
            trips += 1;
            c.batch_execute($sql).await?;
        }};
    }
    let user = "bench-owner";
    // membership, settings and history, each its own statement
    batch!(&tenant);
    q!("SELECT role FROM farm_members WHERE farm_id = $1 AND user_id = $2", farm => Type::UUID, user => Type::TEXT);
    q!("SELECT ai_autonomy, ai_auto_categories, ai_record_autonomy FROM farms WHERE id = $1", farm => Type::UUID);
    batch!("COMMIT");
    // reserve: the locking transaction
    batch!(&tenant);
    let balance: i64 =
        q!("SELECT credit_balance FROM farms WHERE id = $1 FOR UPDATE", farm => Type::UUID)[0]
            .get(0);
    let credits = 10i64;
    let debit = -credits;
    q!(crate::reserve::NAIVE_CHANGE_BALANCE, farm => Type::UUID, debit => Type::INT8);
    let run: Uuid = q!("INSERT INTO ai_runs (farm_id, feature, model, user_id, credits_reserved) VALUES ($1, 'chat', 'offline-farm-assistant', $2, $3) RETURNING id",
        farm => Type::UUID, user => Type::TEXT, credits => Type::INT8)[0].get(0);
    let after = balance - credits;
    q!("INSERT INTO credit_ledger (farm_id, entry_type, delta, balance_after, ai_run_id, actor) VALUES ($1, 'reserve', -$2, $3, $4, $5)",
        farm => Type::UUID, credits => Type::INT8, after => Type::INT8, run => Type::UUID, user => Type::TEXT);
    batch!("COMMIT");
    // (the model call happens here)
    batch!(&tenant);
    let conversation: Uuid = q!("INSERT INTO conversations (farm_id, user_id) VALUES ($1, $2) RETURNING id", farm => Type::UUID, user => Type::TEXT)[0].get(0);
    q!("INSERT INTO messages (farm_id, conversation_id, role, content) VALUES ($1, $2, 'user', $3)", farm => Type::UUID, conversation => Type::UUID, MESSAGE => Type::TEXT);
    let payload = serde_json::json!({"count": 3, "location": "pen 2"});
    q!("INSERT INTO assistant_drafts (farm_id, ai_run_id, record_type, payload, created_by) VALUES ($1, $2, 'mortality', $3, $4)",
        farm => Type::UUID, run => Type::UUID, payload => Type::JSONB, user => Type::TEXT);
    q!("INSERT INTO ai_evals (farm_id, ai_run_id, name, passed) VALUES ($1, $2, 'schema', true)", farm => Type::UUID, run => Type::UUID);
    q!("INSERT INTO ai_evals (farm_id, ai_run_id, name, passed) VALUES ($1, $2, 'clinical_safety', true)", farm => Type::UUID, run => Type::UUID);
    q!("INSERT INTO messages (farm_id, conversation_id, role, content, ai_run_id) VALUES ($1, $2, 'assistant', 'noted', $3)",
        farm => Type::UUID, conversation => Type::UUID, run => Type::UUID);
    // settle: lock, read, write each separately
    let reserved: i64 =
        q!("SELECT credits_reserved FROM ai_runs WHERE id = $1 FOR UPDATE", run => Type::UUID)[0]
            .get(0);
    let charged = 1i64;
    q!("UPDATE ai_runs SET status = 'succeeded', credits_charged = $2, finished_at = now() WHERE id = $1", run => Type::UUID, charged => Type::INT8);
    let balance: i64 =
        q!("SELECT credit_balance FROM farms WHERE id = $1 FOR UPDATE", farm => Type::UUID)[0]
            .get(0);
    let refund = reserved - charged;
    q!(crate::reserve::NAIVE_CHANGE_BALANCE, farm => Type::UUID, refund => Type::INT8);
    let after = balance + refund;
    q!("INSERT INTO credit_ledger (farm_id, entry_type, delta, balance_after, ai_run_id, actor) VALUES ($1, 'settle', $2, $3, $4, 'system')",
        farm => Type::UUID, refund => Type::INT8, after => Type::INT8, run => Type::UUID);
    batch!("COMMIT");
    Ok((start.elapsed(), trips))
}

pub async fn run(mode: &Mode) -> Result<()> {
    let db = TestDb::new().await?;
    if !mode.chain {
        crate::without_chain(&db).await?;
    }
    let farm = db.farm("turns", 1_000_000_000).await?;
    db.member(farm, "bench-owner", "owner").await?;
    let pool = db.app_pool(2)?;
    // The naive turn writes the balance, the run and the ledger itself, which the application
    // role may no longer do (migration 0060): it runs as the owner, under the same triggers.
    let owner = db.owner_pool(2)?;
    let model = TimedModel {
        inner: OfflineChat,
        nanos: AtomicU64::new(0),
    };
    let turns = if mode.reps == 1 { 40 } else { 400 };
    // warm both paths (plans, trigger functions compiled per backend)
    for _ in 0..5 {
        ours(&pool, &model, farm).await?;
        naive(&owner, farm).await?;
    }
    let (mut ours_times, mut naive_times) = (Vec::new(), Vec::new());
    let (mut ours_trips, mut naive_trips, mut ours_holds) = (0, 0, 0);
    // interleaved, so machine noise hits both alike
    for _ in 0..turns {
        let (t, n, h) = ours(&pool, &model, farm).await?;
        ours_times.push(t);
        ours_trips = n;
        ours_holds = h;
        let (t, n) = naive(&owner, farm).await?;
        naive_times.push(t);
        naive_trips = n;
    }
    ours_times.sort();
    naive_times.sort();
    let tx = pool.tenant(farm).await?;
    let audit = farmops::credits::audit_ledger(&tx).await?;
    drop(tx);
    if !audit.holds {
        bail!("ledger invariant broken: {audit:?}");
    }
    println!(
        "## 2. Governance overhead of a chat turn writing one draft (offline model, model time excluded)\n"
    );
    println!("{turns} turns each, interleaved.\n");
    println!(
        "| design | round trips / turn (top-ups counted) | hold legs / turn | p50 ms | p99 ms |"
    );
    println!("|---|---|---|---|---|");
    for (name, trips, holds, times) in [
        (
            "ours (`chat::run_turn`)",
            ours_trips,
            ours_holds,
            &ours_times,
        ),
        (
            "naive (one statement per trip, locking reserve/settle)",
            naive_trips,
            1,
            &naive_times,
        ),
    ] {
        println!(
            "| {name} | {trips} | {holds} | {:.2} | {:.2} |",
            ms(percentile(times, 50.0)),
            ms(percentile(times, 99.0))
        );
    }
    println!(
        "\nRatio (naive ÷ ours) p50: {:.2}x. Target: ours ≤ 6 round trips and < 5 ms p50.\n",
        ratio(
            ms(percentile(&naive_times, 50.0)),
            ms(percentile(&ours_times, 50.0))
        )
    );
    Ok(())
}
