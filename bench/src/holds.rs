//! Section 7: what a turn holds, against what it is charged.
//!
//! Ours: `chat::run_turn`, holding per model call (`credits::MeteredRun`): input measured from
//! the request as built, later calls chained from the reported usage. The fixed worst case
//! (the design before it): one hold of the configured caps, `max_model_calls` x
//! (`max_input_tokens` in, `maxTokens` out), taken whole before the first call.
//!
//! Turns: the README walkthrough turn with the offline model, the same turn through the real
//! Bedrock client against the local Converse stub (Claude 3.5 Haiku prices, the stub
//! reporting a typical tokeniser's usage: a token per 3 bytes read and written), and a
//! three-call tool turn through the stub, typical and at a worst-case tokeniser's usage (a
//! token per byte read, the whole `maxTokens` out: the bound itself, so ours holds about what it
//! charges there). For each: the peak hold and the charge,
//! the smallest balance that runs the turn to the end (searched: a farm of that balance,
//! one turn), and how many such turns 1,000 credits can hold at once (1,000 ÷ peak hold).

use std::{sync::Arc, time::Duration};

use anyhow::{Result, bail};
use farmops::{
    chat::{self, ChatDeps, ChatLimits, TurnRequest, TurnResponse},
    credits::{self, ModelPrice},
    model::{ChatModel, offline::OfflineChat},
    rag::NoRetrieval,
    testing::{
        TestDb,
        converse::{ConverseStub, HAIKU, Scripted},
    },
};
use serde_json::json;
use uuid::Uuid;

const WALKTHROUGH: &str = "3 birds died in pen 2 and we sold 20 crates of eggs for 45,000 naira";

/// A turn to measure: its message, the model that answers it, and the calls it makes.
#[derive(Clone, Copy)]
enum Case {
    WalkthroughOffline,
    WalkthroughStub,
    ThreeCallsStub,
    ThreeCallsStubWorst,
}

impl Case {
    fn label(self) -> &'static str {
        match self {
            Case::WalkthroughOffline => "walkthrough, offline model",
            Case::WalkthroughStub => "walkthrough, Bedrock stub (Haiku prices)",
            Case::ThreeCallsStub => "three-call tool turn, Bedrock stub (Haiku prices)",
            Case::ThreeCallsStubWorst => {
                "three-call tool turn, Bedrock stub at worst-case usage (the bound)"
            }
        }
    }
    fn message(self) -> &'static str {
        match self {
            Case::ThreeCallsStub | Case::ThreeCallsStubWorst => {
                "3 birds died in pen 2; how many this week?"
            }
            _ => WALKTHROUGH,
        }
    }
    fn calls(self) -> u32 {
        match self {
            Case::ThreeCallsStub | Case::ThreeCallsStubWorst => 3,
            _ => 2,
        }
    }
    fn price(self) -> ModelPrice {
        match self {
            Case::WalkthroughOffline => credits::price_for("offline-farm-assistant"),
            _ => credits::price_for(HAIKU),
        }
        .expect("priced")
    }
    /// A fresh model for one turn (the stub answers from a script of its own).
    async fn model(self) -> Result<(Arc<dyn ChatModel>, Option<ConverseStub>)> {
        let script = match self {
            Case::WalkthroughOffline => return Ok((Arc::new(OfflineChat), None)),
            Case::WalkthroughStub => vec![
                Scripted::tool_use(&[
                    (
                        "tu-1",
                        "record_mortality",
                        json!({"count": 3, "location": "pen 2"}),
                    ),
                    (
                        "tu-2",
                        "record_sale",
                        json!({"item": "eggs", "quantity": 20, "unit": "crate", "amount_kobo": 4_500_000}),
                    ),
                ]),
                Scripted::text("Saved both as drafts for you to confirm."),
            ],
            Case::ThreeCallsStub | Case::ThreeCallsStubWorst => vec![
                Scripted::tool_use(&[(
                    "tu-1",
                    "record_mortality",
                    json!({"count": 3, "location": "pen 2"}),
                )]),
                Scripted::tool_use(&[(
                    "tu-2",
                    "recent_records",
                    json!({"record_type": "mortality"}),
                )]),
                Scripted::text("Saved the deaths as a draft; pen 2 has had 3 this week."),
            ],
        };
        let usage = match self {
            Case::ThreeCallsStubWorst => Scripted::at_worst_usage,
            _ => Scripted::at_typical_usage,
        };
        let stub = ConverseStub::start(script.into_iter().map(usage).collect()).await?;
        Ok((stub.model(Duration::from_secs(5)).await, Some(stub)))
    }
}

struct Bench {
    db: TestDb,
    pool: farmops::db::Db,
    limits: ChatLimits,
}

impl Bench {
    /// One turn of `case` on a new farm holding `balance`: the answer, or `None` when refused
    /// (402).
    async fn turn(&self, case: Case, balance: i64) -> Result<Option<TurnResponse>> {
        let farm: Uuid = self.db.farm("holds", balance).await?;
        self.db.member(farm, "bench-owner", "owner").await?;
        let (model, _stub) = case.model().await?;
        let deps = ChatDeps {
            db: &self.pool,
            model: model.as_ref(),
            retriever: &NoRetrieval,
            limits: &self.limits,
        };
        let request = TurnRequest {
            message: case.message().into(),
            conversation_id: None,
        };
        match chat::run_turn(&deps, farm, "bench-owner", &request).await {
            Ok(turn) => Ok(Some(turn)),
            Err(farmops::Error::InsufficientCredits { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether the turn ran to its end on `balance`: every call made, nothing cut short.
    async fn runs_to_end(&self, case: Case, balance: i64) -> Result<bool> {
        Ok(self
            .turn(case, balance)
            .await?
            .is_some_and(|t| t.usage.model_calls == case.calls() && !t.reply.contains("(stopped")))
    }

    /// The smallest balance on which the turn runs to its end (between `low` and `high`,
    /// where it does run on `high`).
    async fn smallest_balance(&self, case: Case, mut low: i64, mut high: i64) -> Result<i64> {
        if !self.runs_to_end(case, high).await? {
            bail!("{} does not run to its end on {high} credits", case.label());
        }
        while low < high {
            let mid = low + (high - low) / 2;
            if self.runs_to_end(case, mid).await? {
                high = mid;
            } else {
                low = mid + 1;
            }
        }
        Ok(high)
    }
}

/// The fixed worst case of the caps: what one turn held before holds were sized per call.
fn fixed_hold(price: ModelPrice, limits: &ChatLimits) -> i64 {
    let calls = u64::from(limits.max_model_calls);
    credits::cost(
        price,
        calls * limits.max_input_tokens,
        calls * u64::from(limits.max_output_tokens),
    )
}

pub async fn run() -> Result<()> {
    let db = TestDb::new().await?;
    let pool = db.app_pool(2)?;
    let bench = Bench {
        db,
        pool,
        limits: ChatLimits::default(),
    };
    println!("## 7. Credits held by a turn, against what it is charged\n");
    println!(
        "Caps: {} model calls, {} input tokens, maxTokens {}. Fixed: one hold of the caps before the first call. Ours: held per call.\n",
        bench.limits.max_model_calls, bench.limits.max_input_tokens, bench.limits.max_output_tokens
    );
    println!(
        "| turn | charged | hold legs | peak held: fixed / ours | peak ÷ charged: fixed / ours | smallest balance: fixed / ours | smallest ÷ charged: fixed / ours | turns 1,000 credits hold at once: fixed / ours | ours ÷ fixed |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for case in [
        Case::WalkthroughOffline,
        Case::WalkthroughStub,
        Case::ThreeCallsStub,
        Case::ThreeCallsStubWorst,
    ] {
        let Some(turn) = bench.turn(case, 100_000).await? else {
            bail!("{} refused on 100,000 credits", case.label());
        };
        if turn.usage.model_calls != case.calls() || turn.usage.calls_over_bound != 0 {
            bail!("{}: unexpected turn {:?}", case.label(), turn.usage);
        }
        let (charged, peak) = (turn.credits.charged, turn.credits.reserved);
        let fixed = fixed_hold(case.price(), &bench.limits);
        let smallest = bench.smallest_balance(case, 1, peak).await?;
        let ratio = |a: i64| a as f64 / charged.max(1) as f64;
        let (fixed_at_once, ours_at_once) = (1_000 / fixed, 1_000 / peak);
        println!(
            "| {} | {charged} | {} | {fixed} / {peak} | {:.1}x / {:.1}x | {fixed} / {smallest} | {:.1}x / {:.1}x | {fixed_at_once} / {ours_at_once} | {} |",
            case.label(),
            turn.usage.holds,
            ratio(fixed),
            ratio(peak),
            ratio(fixed),
            ratio(smallest),
            if fixed_at_once == 0 {
                "n/a (fixed: 0)".to_string()
            } else {
                format!("{:.1}x", ours_at_once as f64 / fixed_at_once as f64)
            },
        );
    }
    println!(
        "\nGoals (typical usage): peak held ≤ 8x charged; smallest balance ≤ 3x charged; turns on 1,000 credits ≥ 10x the fixed hold's. At worst-case usage the charge is the bound itself.\n"
    );
    Ok(())
}
