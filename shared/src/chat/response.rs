//! What a turn answers.

use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{evals::Eval, executor::Written};
use crate::{credits::Settled, drafts::Draft, model::Usage, recommendations::Recommendation};

#[derive(Debug, Clone, Serialize)]
pub struct CreditsView {
    pub reserved: i64,
    pub charged: i64,
    pub refunded: i64,
    pub balance: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TurnResponse {
    pub reply: String,
    /// True when the clinical safety filter withheld the model's reply (see [`evals`]).
    pub reply_withheld: bool,
    pub conversation_id: Uuid,
    pub run_id: Uuid,
    pub model: String,
    pub drafts: Vec<Draft>,
    pub records: Vec<Value>,
    pub recommendations: Vec<Recommendation>,
    /// Tool calls refused (invalid input, suggest-only farm, clinical filter).
    pub refused: Vec<Value>,
    pub evals: Vec<Eval>,
    pub credits: CreditsView,
    pub usage: UsageView,
}

#[derive(Debug, Clone, Serialize)]
pub struct UsageView {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub model_calls: u32,
    /// Hold legs the run took: the opening one and a top-up before each call that needed more.
    pub holds: u32,
    /// Calls whose reported usage exceeded the bound held for them (the charge is then capped
    /// at the hold); 0 unless a provider miscounts.
    pub calls_over_bound: u32,
}

impl TurnResponse {
    /// The turn's answer from what was saved.
    pub(super) fn new(turn: Turn, written: Vec<Written>, settled: &Settled) -> TurnResponse {
        let mut drafts = Vec::new();
        let mut records = Vec::new();
        let mut recommendations = Vec::new();
        for w in written {
            match w {
                Written::Draft(d) => drafts.push(d),
                Written::Record {
                    record_type,
                    record,
                } => records.push(json!({ "record_type": record_type, "record": record })),
                Written::Recommendation(r) => recommendations.push(r),
            }
        }
        TurnResponse {
            reply: turn.reply,
            reply_withheld: turn.reply_withheld,
            conversation_id: turn.conversation_id,
            run_id: turn.run_id,
            model: turn.model,
            drafts,
            records,
            recommendations,
            refused: turn.refused,
            evals: turn.evals,
            credits: CreditsView {
                reserved: settled.credits_reserved,
                charged: settled.credits_charged,
                refunded: settled.credits_refunded,
                balance: settled.balance_after,
            },
            usage: UsageView {
                input_tokens: turn.usage.input_tokens,
                output_tokens: turn.usage.output_tokens,
                model_calls: turn.calls,
                holds: turn.holds,
                calls_over_bound: turn.calls_over_bound,
            },
        }
    }
}

/// The parts of a finished turn the answer repeats.
pub(super) struct Turn {
    pub reply: String,
    pub reply_withheld: bool,
    pub conversation_id: Uuid,
    pub run_id: Uuid,
    pub model: String,
    pub refused: Vec<Value>,
    pub evals: Vec<Eval>,
    pub usage: Usage,
    pub calls: u32,
    pub holds: u32,
    pub calls_over_bound: u32,
}
