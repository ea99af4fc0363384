//! One governed AI turn, end to end, and feedback on a run.
//!
//! A turn, and its database round trips (with NoRetrieval; each read-tool call adds one):
//!
//! 1. ONE statement (sent with `BEGIN` + tenant in the same round trip): the caller's role,
//!    the farm's autonomy, whether the conversation is the caller's, and its last messages;
//!    policy in Rust: 404 not a member, 403 viewer, 404 foreign conversation. [1 RT]
//! 2. retrieval (tenant-scoped [`Retriever`]) in the same transaction, before any debit;
//! 3. reserve the worst case and COMMIT, pipelined ([`credits::reserve_credits_committed`]),
//!    so no lock is held across a model call. The worst case caps `maxTokens`, bounds the
//!    input of every call to [`ChatLimits::max_input_tokens`] (history is trimmed to fit; the
//!    loop stops before a call that could exceed it) and allows at most
//!    [`ChatLimits::max_model_calls`] calls. [1 RT]
//! 4. the tool loop: the model proposes, the [`executor`] validates, resolves autonomy and
//!    PLANS writes (nothing is written yet);
//! 5. evals (schema conformance per tool call, clinical safety on the reply);
//! 6. ONE transaction, its statements pipelined in one round trip: settle the run with the
//!    real usage, the planned drafts/records/recommendations, the evals, the conversation
//!    and its two messages; then COMMIT. [2 RT]
//!
//! Total: 4 round trips for a turn without read tools (a test counts them). A model failure
//! settles the run as failed (charging only what the calls that succeeded consumed) with its
//! evals, pipelined, then commits (2 RT); nothing else of the turn is written; 502/503.

pub mod evals;
pub mod executor;
pub mod tools;

use std::time::Instant;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    autonomy::AutonomySettings,
    config::{ConfigError, Env},
    credits::{self, Feature, NewRun, Settled, Settlement},
    db::{Db, TenantTx, Type},
    drafts::Draft,
    error::{Error, Result},
    membership::Role,
    model::{
        Block, ChatModel, ChatRequest, Message, Role as MsgRole, StopReason, Usage,
        offline::KNOWLEDGE_MARKER,
    },
    rag::{Passage, Retriever},
    recommendations::Recommendation,
};
use evals::Eval;
use executor::{Executor, Outcome, Planned, Written};
use tools::Tool;

/// The largest chat request body.
pub const BODY_LIMIT: usize = 16 * 1024;
/// The longest message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 4000;

/// The caps that bound a turn's cost (and so its reservation).
///
/// | variable | default | meaning |
/// |---|---|---|
/// | `FARMOPS_CHAT_PROVIDER` | `offline` | `offline` or `bedrock`; anything else stops the cold start (`crate::model::from_env`) |
/// | `FARMOPS_CHAT_MODEL_ID` | `anthropic.claude-3-5-haiku-20241022-v1:0` | Bedrock model id (must have a price) |
/// | `FARMOPS_CHAT_MAX_TOKENS` | `1024` | `maxTokens` of every model call (1..=4096) |
/// | `FARMOPS_CHAT_MAX_INPUT_TOKENS` | `32000` | input bound of every call (history is trimmed to fit) |
/// | `FARMOPS_CHAT_MAX_MODEL_CALLS` | `4` | model calls per turn (1 + tool rounds), 1..=8 |
/// | `FARMOPS_CHAT_HISTORY_MESSAGES` | `8` | previous messages sent as history |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatLimits {
    pub max_output_tokens: u32,
    pub max_input_tokens: u64,
    pub max_model_calls: u32,
    pub history_messages: i64,
}

impl Default for ChatLimits {
    fn default() -> Self {
        ChatLimits {
            max_output_tokens: 1024,
            max_input_tokens: 32_000,
            max_model_calls: 4,
            history_messages: 8,
        }
    }
}

impl ChatLimits {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let d = ChatLimits::default();
        let limits = ChatLimits {
            max_output_tokens: env.parsed("FARMOPS_CHAT_MAX_TOKENS", d.max_output_tokens)?,
            max_input_tokens: env.parsed("FARMOPS_CHAT_MAX_INPUT_TOKENS", d.max_input_tokens)?,
            max_model_calls: env.parsed("FARMOPS_CHAT_MAX_MODEL_CALLS", d.max_model_calls)?,
            history_messages: env.parsed("FARMOPS_CHAT_HISTORY_MESSAGES", d.history_messages)?,
        };
        let bad = |var, reason: &str| {
            Err(ConfigError::Invalid {
                var,
                reason: reason.into(),
            })
        };
        if !(1..=4096).contains(&limits.max_output_tokens) {
            return bad("FARMOPS_CHAT_MAX_TOKENS", "must be 1 to 4096");
        }
        if !(8_000..=200_000).contains(&limits.max_input_tokens) {
            return bad("FARMOPS_CHAT_MAX_INPUT_TOKENS", "must be 8000 to 200000");
        }
        if !(1..=8).contains(&limits.max_model_calls) {
            return bad("FARMOPS_CHAT_MAX_MODEL_CALLS", "must be 1 to 8");
        }
        if !(0..=50).contains(&limits.history_messages) {
            return bad("FARMOPS_CHAT_HISTORY_MESSAGES", "must be 0 to 50");
        }
        Ok(limits)
    }
}

/// What the turn needs, built once at cold start.
pub struct ChatDeps<'a> {
    pub db: &'a Db,
    pub model: &'a dyn ChatModel,
    pub retriever: &'a dyn Retriever,
    pub limits: &'a ChatLimits,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TurnRequest {
    pub message: String,
    #[serde(default)]
    pub conversation_id: Option<Uuid>,
}

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
}

fn validate_message(message: &str) -> Result<&str> {
    let m = message.trim();
    if m.is_empty() {
        return Err(Error::invalid("message", "must not be empty"));
    }
    if m.chars().count() > MAX_MESSAGE_CHARS {
        return Err(Error::invalid(
            "message",
            format!("must be at most {MAX_MESSAGE_CHARS} characters"),
        ));
    }
    if m.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(Error::invalid(
            "message",
            "must not contain control characters",
        ));
    }
    Ok(m)
}

const SYSTEM_PROMPT: &str = "You are the FarmOps assistant for one farm. Record what the farmer tells you with the record_* tools (one call per event; money in kobo: 1 naira = 100 kobo), propose actions with create_recommendation, read the farm with recent_records and farm_summary. Never give drug doses, never shorten withdrawal periods, never suggest substances banned for food animals: refer to a veterinarian. Answer briefly.";

struct Context {
    role: Role,
    autonomy: AutonomySettings,
    conversation_ok: bool,
    history: Vec<Message>,
}

async fn load_context(
    tx: &TenantTx,
    user_id: &str,
    conversation_id: Option<Uuid>,
    history: i64,
) -> Result<Context> {
    let farm_id = tx.farm_id();
    let row = tx
        .query_opt(
            "SELECT m.role, f.ai_autonomy, f.ai_auto_categories, f.ai_record_autonomy,
                    $3::uuid IS NULL OR EXISTS (SELECT 1 FROM conversations c
                                                 WHERE c.farm_id = $1 AND c.id = $3 AND c.user_id = $2),
                    coalesce((SELECT jsonb_agg(jsonb_build_object('role', h.role, 'content', h.content) ORDER BY h.id)
                                FROM (SELECT id, role, content FROM messages
                                       WHERE farm_id = $1 AND conversation_id = $3
                                       ORDER BY id DESC LIMIT $4) h), '[]'::jsonb)
               FROM farms f LEFT JOIN farm_members m ON m.farm_id = f.id AND m.user_id = $2
              WHERE f.id = $1",
            &[
                (&farm_id, Type::UUID),
                (&user_id, Type::TEXT),
                (&conversation_id, Type::UUID),
                (&history, Type::INT8),
            ],
        )
        .await?
        .ok_or(Error::NotFound("farm"))?;
    let role = row
        .get::<_, Option<&str>>(0)
        .and_then(Role::parse)
        .ok_or(Error::NotFound("farm"))?;
    let autonomy = AutonomySettings::from_columns(row.get(1), &row.get(2), &row.get(3))?;
    let raw: Value = row.get(5);
    let history = raw
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| {
                    let text = m["content"].as_str().unwrap_or_default();
                    if m["role"] == "assistant" {
                        Message::assistant_text(text)
                    } else {
                        Message::user_text(text)
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Context {
        role,
        autonomy,
        conversation_ok: row.get(4),
        history,
    })
}

/// Bedrock requires the conversation to start with a user message and alternate.
fn well_formed(mut history: Vec<Message>) -> Vec<Message> {
    while history.first().is_some_and(|m| m.role != MsgRole::User) {
        history.remove(0);
    }
    while history.last().is_some_and(|m| m.role != MsgRole::Assistant) {
        history.pop();
    }
    history
}

fn system_prompt(passages: &[Passage]) -> String {
    let mut system = SYSTEM_PROMPT.to_string();
    if !passages.is_empty() {
        system.push_str(&format!("\n{KNOWLEDGE_MARKER}\n"));
        for p in passages {
            let text: String = p.content.chars().take(1000).collect();
            system.push_str(&format!("- {}\n", text.replace('\n', " ")));
        }
    }
    system
}

/// The first request of the turn, within the input bound: history is dropped oldest first
/// until the request takes at most half the bound (room for the tool rounds), then
/// passages, least relevant first, until it fits at all. A message that cannot fit even
/// alone is 422 (before anything is reserved).
fn fit_request(
    message: &str,
    mut history: Vec<Message>,
    passages: &[Passage],
    limits: &ChatLimits,
) -> Result<ChatRequest> {
    let mut kept = passages.len();
    let mut request = ChatRequest {
        system: system_prompt(passages),
        messages: Vec::new(),
        tools: tools::tool_specs(),
        tool_choice: None,
        max_tokens: limits.max_output_tokens,
    };
    loop {
        request.messages = well_formed(history.clone());
        request.messages.push(Message::user_text(message));
        if request.input_token_bound() <= limits.max_input_tokens / 2 {
            return Ok(request);
        }
        if !history.is_empty() {
            history.remove(0);
        } else if kept > 0 {
            kept -= 1;
            request.system = system_prompt(&passages[..kept]);
        } else if request.input_token_bound() <= limits.max_input_tokens {
            return Ok(request);
        } else {
            return Err(Error::invalid(
                "message",
                "the message is too large for one turn",
            ));
        }
    }
}

/// Runs one chat turn for `user_id` on `farm_id`. See the module documentation.
#[tracing::instrument(skip(deps, request), fields(farm_id = %farm_id))]
pub async fn run_turn(
    deps: &ChatDeps<'_>,
    farm_id: Uuid,
    user_id: &str,
    request: &TurnRequest,
) -> Result<TurnResponse> {
    let message = validate_message(&request.message)?;
    let limits = deps.limits;
    let model_id = deps.model.model_id().to_string();
    let price = credits::price_for(&model_id)
        .ok_or_else(|| Error::unexpected(format!("model {model_id} has no price")))?;

    // 1-3: context, retrieval, reservation (committed before the first model call).
    let tx = deps.db.tenant(farm_id).await?;
    let ctx = load_context(
        &tx,
        user_id,
        request.conversation_id,
        limits.history_messages,
    )
    .await?;
    if !ctx.role.may_chat() {
        return Err(Error::Forbidden(format!(
            "a {} may not chat with the assistant",
            ctx.role.as_str()
        )));
    }
    if !ctx.conversation_ok {
        return Err(Error::NotFound("conversation"));
    }
    let passages = deps.retriever.retrieve(&tx, message, 4).await?;
    let base = fit_request(message, ctx.history, &passages, limits)?;
    let worst = credits::worst_case_cost(
        price,
        limits.max_input_tokens,
        u64::from(limits.max_output_tokens),
        u64::from(limits.max_model_calls),
    );
    let summary: String = message.chars().take(200).collect();
    let reservation = credits::reserve_credits_committed(
        tx,
        &NewRun {
            feature: Feature::Chat,
            model: &model_id,
            user_id: Some(user_id),
            credits: worst,
            request_summary: Some(&summary),
        },
    )
    .await?;
    let run_id = reservation.run_id;
    let conversation_id = request.conversation_id.unwrap_or_else(Uuid::new_v4);

    // 4: the tool loop.
    let started = Instant::now();
    let executor = Executor {
        farm_id,
        user_id,
        autonomy: &ctx.autonomy,
        today: Utc::now().date_naive(),
    };
    let mut turn = LoopState::default();
    let loop_result = tool_loop(deps, &executor, base, &mut turn).await;
    let LoopState {
        usage,
        calls,
        planned,
        refused,
        mut evals,
        mut reply,
    } = turn;
    let latency_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
    let actual = credits::cost(price, usage.input_tokens, usage.output_tokens);
    if actual > worst {
        // The caps make this impossible unless a provider miscounts; never charge above
        // the reservation (the schema would refuse it).
        tracing::warn!(run_id = %run_id, actual, worst, "usage above the reservation: charge capped");
    }
    let charged = actual.min(worst);
    let tokens = |n: u64| i32::try_from(n).unwrap_or(i32::MAX);

    if let Err(model_error) = loop_result {
        let message = model_error.to_string();
        let tx = deps.db.tenant(farm_id).await?;
        let failed = Settlement {
            failed: true,
            credits_charged: charged,
            input_tokens: tokens(usage.input_tokens),
            output_tokens: tokens(usage.output_tokens),
            latency_ms,
            response_summary: None,
            error: Some(&message),
        };
        let (settled, stored) = futures::join!(
            async { credits::settle_run(&tx, run_id, &failed).await.map(drop) },
            store_evals(&tx, run_id, &evals)
        );
        match settled.and(stored) {
            Ok(()) => tx.commit().await?,
            // The reservation stays open: reconcile-credits expires and refunds it.
            Err(e) => {
                tracing::error!(run_id = %run_id, error = %e, "could not settle a failed run")
            }
        }
        return Err(model_error);
    }

    // 5: evals on the reply.
    reply = reply.trim().to_string();
    if reply.is_empty() {
        reply = "(no reply)".into();
    }
    let clinical = evals::clinical_eval("reply", &reply);
    let reply_withheld = !clinical.passed || evals.iter().any(evals::is_guardrail_block);
    if reply_withheld {
        reply = evals::SAFE_REPLY.to_string();
    }
    evals.push(clinical);

    // 6: one transaction, pipelined: settle, writes, evals, messages; then commit.
    let response_summary: String = reply.chars().take(500).collect();
    let tx = deps.db.tenant(farm_id).await?;
    let settlement = Settlement {
        failed: false,
        credits_charged: charged,
        input_tokens: tokens(usage.input_tokens),
        output_tokens: tokens(usage.output_tokens),
        latency_ms,
        response_summary: Some(&response_summary),
        error: None,
    };
    let writes = futures::future::join_all(
        planned
            .iter()
            .map(|p| executor::apply_one(&tx, run_id, user_id, p)),
    );
    let (settled, written, stored_evals, stored_messages) = futures::join!(
        credits::settle_run(&tx, run_id, &settlement),
        writes,
        store_evals(&tx, run_id, &evals),
        store_messages(&tx, conversation_id, user_id, run_id, message, &reply)
    );
    let finish: Result<(Option<Settled>, Vec<Written>)> = async {
        let written = written.into_iter().collect::<Result<Vec<_>>>()?;
        stored_evals?;
        stored_messages?;
        Ok((settled?, written))
    }
    .await;
    let (settled, written) = match finish {
        Ok(ok) => {
            tx.commit().await?;
            ok
        }
        Err(e) => {
            drop(tx);
            tracing::error!(run_id = %run_id, error = %e, "the turn could not be saved; settling it as failed");
            let tx = deps.db.tenant(farm_id).await?;
            let message = format!("saving the turn failed: {e}");
            credits::settle_run(
                &tx,
                run_id,
                &Settlement {
                    failed: true,
                    error: Some(&message),
                    response_summary: None,
                    ..settlement.clone()
                },
            )
            .await?;
            tx.commit().await?;
            return Err(e);
        }
    };
    let settled = settled.ok_or_else(|| Error::unexpected("the run was already settled"))?;
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
    Ok(TurnResponse {
        reply,
        reply_withheld,
        conversation_id,
        run_id,
        model: model_id,
        drafts,
        records,
        recommendations,
        refused,
        evals,
        credits: CreditsView {
            reserved: settled.credits_reserved,
            charged: settled.credits_charged,
            refunded: settled.credits_refunded,
            balance: settled.balance_after,
        },
        usage: UsageView {
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            model_calls: calls,
        },
    })
}

/// What the tool loop accumulates.
#[derive(Default)]
struct LoopState {
    usage: Usage,
    calls: u32,
    planned: Vec<Planned>,
    refused: Vec<Value>,
    evals: Vec<Eval>,
    reply: String,
}

/// Calls the model, executes its tool calls, and calls it again with the results, within
/// the turn's caps. A model (or database) error ends it; `turn` keeps what was consumed.
async fn tool_loop(
    deps: &ChatDeps<'_>,
    executor: &Executor<'_>,
    mut request: ChatRequest,
    turn: &mut LoopState,
) -> Result<()> {
    let limits = deps.limits;
    loop {
        if request.input_token_bound() > limits.max_input_tokens {
            turn.reply
                .push_str(" (stopped: the turn reached its input limit)");
            return Ok(());
        }
        let response = deps.model.converse(&request).await?;
        turn.calls += 1;
        turn.usage.input_tokens += response.usage.input_tokens;
        turn.usage.output_tokens += response.usage.output_tokens;
        let text = response.message.text();
        if !text.trim().is_empty() {
            turn.reply = text;
        }
        if let StopReason::GuardrailIntervened(assessment) = &response.stop_reason {
            turn.evals
                .push(evals::guardrail_eval(assessment, &turn.reply));
        }
        let uses: Vec<(String, String, Value)> = response
            .message
            .content
            .iter()
            .filter_map(|b| match b {
                Block::ToolUse { id, name, input } => {
                    Some((id.clone(), name.clone(), input.clone()))
                }
                _ => None,
            })
            .collect();
        request.messages.push(Message {
            role: MsgRole::Assistant,
            content: response.message.content,
        });
        if response.stop_reason != StopReason::ToolUse || uses.is_empty() {
            return Ok(());
        }
        if turn.calls >= limits.max_model_calls {
            turn.reply
                .push_str(" (stopped: the turn reached its tool-call limit)");
            return Ok(());
        }
        let mut results = Vec::new();
        for (id, name, input) in uses {
            let outcome = execute(deps.db, executor, &id, &name, &input).await?;
            if let Some(e) = outcome.eval {
                turn.evals.push(e);
            }
            if outcome.is_error {
                turn.refused.push(json!({
                    "tool": name, "input": input, "error": outcome.result["error"]
                }));
            }
            if let Some(p) = outcome.planned {
                turn.planned.push(p);
            }
            results.push(Block::ToolResult {
                id,
                content: outcome.result,
                is_error: outcome.is_error,
            });
        }
        request.messages.push(Message {
            role: MsgRole::User,
            content: results,
        });
    }
}

/// One tool call: unknown tools and invalid read arguments are tool errors; writes are
/// planned by the executor.
async fn execute(
    db: &Db,
    executor: &Executor<'_>,
    id: &str,
    name: &str,
    input: &Value,
) -> Result<Outcome> {
    let error = |message: String, eval: Option<Eval>| Outcome {
        result: json!({ "error": message }),
        is_error: true,
        planned: None,
        eval,
    };
    Ok(match tools::parse_tool(name) {
        None => error(
            format!("unknown tool {name}"),
            Some(Eval {
                name: evals::SCHEMA_CONFORMANCE.into(),
                passed: false,
                details: json!({ "tool": name, "tool_use_id": id,
                                 "errors": [{"field": "name", "message": "unknown tool"}] }),
            }),
        ),
        Some(tool @ (Tool::RecentRecords | Tool::FarmSummary)) => {
            match executor::read_tool(db, executor.farm_id, tool, input).await {
                Ok(result) => Outcome {
                    result,
                    is_error: false,
                    planned: None,
                    eval: None,
                },
                Err(e @ Error::Invalid(_)) => error(e.to_string(), None),
                Err(e) => return Err(e),
            }
        }
        Some(tool) => executor.plan_write(tool, id, name, input),
    })
}

async fn store_evals(tx: &TenantTx, run_id: Uuid, evals: &[Eval]) -> Result<()> {
    if evals.is_empty() {
        return Ok(());
    }
    let farm_id = tx.farm_id();
    let rows = serde_json::to_value(evals).map_err(|e| Error::unexpected(e.to_string()))?;
    tx.query(
        "INSERT INTO ai_evals (farm_id, ai_run_id, name, passed, details)
         SELECT $1, $2, e.name, e.passed, e.details
           FROM jsonb_to_recordset($3) AS e(name text, passed boolean, details jsonb)",
        &[
            (&farm_id, Type::UUID),
            (&run_id, Type::UUID),
            (&rows, Type::JSONB),
        ],
    )
    .await?;
    Ok(())
}

async fn store_messages(
    tx: &TenantTx,
    conversation_id: Uuid,
    user_id: &str,
    run_id: Uuid,
    question: &str,
    reply: &str,
) -> Result<()> {
    let farm_id = tx.farm_id();
    tx.query(
        "WITH conv AS (
           INSERT INTO conversations (farm_id, id, user_id) VALUES ($1, $2, $3)
           ON CONFLICT (id) DO UPDATE SET last_message_at = now()
           RETURNING id)
         INSERT INTO messages (farm_id, conversation_id, role, content, ai_run_id)
         SELECT $1, conv.id, r.role, r.content, $4
           FROM conv CROSS JOIN (VALUES (1, 'user', $5::text), (2, 'assistant', $6::text)) AS r(ord, role, content)
          ORDER BY r.ord",
        &[
            (&farm_id, Type::UUID),
            (&conversation_id, Type::UUID),
            (&user_id, Type::TEXT),
            (&run_id, Type::UUID),
            (&question, Type::TEXT),
            (&reply, Type::TEXT),
        ],
    )
    .await?;
    Ok(())
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    pub rating: String,
    #[serde(default)]
    pub comment: Option<String>,
}

/// Records (or replaces) the caller's rating of a run of their farm. Any member may rate;
/// a run of another farm, or none, is 404.
#[tracing::instrument(skip(db, feedback), fields(farm_id = %farm_id, run_id = %run_id))]
pub async fn give_feedback(
    db: &Db,
    farm_id: Uuid,
    user_id: &str,
    run_id: Uuid,
    feedback: &FeedbackRequest,
) -> Result<Value> {
    if feedback.rating != "up" && feedback.rating != "down" {
        return Err(Error::invalid("rating", "must be \"up\" or \"down\""));
    }
    let comment = feedback
        .comment
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    if comment.is_some_and(|c| c.chars().count() > 2000) {
        return Err(Error::invalid("comment", "must be at most 2000 characters"));
    }
    let tx = db.tenant(farm_id).await?;
    crate::membership::member_role(&tx, user_id).await?;
    let row = tx
        .query_opt(
            "INSERT INTO ai_feedback (farm_id, ai_run_id, user_id, rating, comment)
             SELECT farm_id, id, $3, $4, $5 FROM ai_runs WHERE farm_id = $1 AND id = $2
             ON CONFLICT (ai_run_id, user_id) DO UPDATE SET rating = EXCLUDED.rating, comment = EXCLUDED.comment, created_at = now()
             RETURNING jsonb_build_object('id', id, 'run_id', ai_run_id, 'rating', rating, 'comment', comment)",
            &[
                (&farm_id, Type::UUID),
                (&run_id, Type::UUID),
                (&user_id, Type::TEXT),
                (&feedback.rating, Type::TEXT),
                (&comment, Type::TEXT),
            ],
        )
        .await?
        .ok_or(Error::NotFound("run"))?;
    tx.commit().await?;
    Ok(row.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_checked() {
        assert!(validate_message("3 birds died").is_ok());
        for bad in ["", "   ", "a\u{0}b"] {
            assert_eq!(validate_message(bad).unwrap_err().status(), 422, "{bad:?}");
        }
        assert_eq!(
            validate_message(&"x".repeat(MAX_MESSAGE_CHARS + 1))
                .unwrap_err()
                .status(),
            422
        );
    }

    #[test]
    fn limits_from_env_are_checked() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            Env(move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            })
        };
        assert_eq!(
            ChatLimits::from_env(&env(&[])).unwrap(),
            ChatLimits::default()
        );
        assert!(ChatLimits::from_env(&env(&[("FARMOPS_CHAT_MAX_TOKENS", "0")])).is_err());
        assert!(ChatLimits::from_env(&env(&[("FARMOPS_CHAT_MAX_MODEL_CALLS", "99")])).is_err());
    }

    #[test]
    fn the_worst_case_covers_every_call_at_its_caps() {
        let limits = ChatLimits::default();
        let price = credits::price_for("anthropic.claude-3-5-haiku-20241022-v1:0").unwrap();
        let worst = credits::worst_case_cost(
            price,
            limits.max_input_tokens,
            u64::from(limits.max_output_tokens),
            u64::from(limits.max_model_calls),
        );
        let n = u64::from(limits.max_model_calls);
        assert!(
            credits::cost(
                price,
                limits.max_input_tokens * n,
                u64::from(limits.max_output_tokens) * n
            ) <= worst
        );
    }

    #[test]
    fn the_first_request_is_trimmed_to_the_input_bound() {
        let limits = ChatLimits::default();
        let passage = |i: usize| Passage {
            farm_id: Uuid::nil(),
            source: format!("document:{i}"),
            content: "knowledge ".repeat(100),
            distance: 0.1,
        };
        let passages: Vec<Passage> = (0..4).map(passage).collect();
        let history: Vec<Message> = (0..50)
            .flat_map(|i| {
                [
                    Message::user_text(format!("question {i} {}", "x".repeat(900))),
                    Message::assistant_text("y".repeat(900)),
                ]
            })
            .collect();
        let r = fit_request("hello", history.clone(), &passages, &limits).unwrap();
        assert!(r.input_token_bound() <= limits.max_input_tokens / 2);
        assert!(
            r.messages.len() > 1 && r.messages.len() < 101,
            "some history kept: {} messages, bound {}, bare {}",
            r.messages.len(),
            r.input_token_bound(),
            fit_request("hello", vec![], &passages, &limits)
                .unwrap()
                .input_token_bound()
        );
        assert_eq!(r.messages[0].role, MsgRole::User);
        assert!(
            r.system.contains("knowledge"),
            "passages kept while history can go"
        );
        // A huge message (under the character cap) still fits by dropping everything else.
        let big = "é".repeat(MAX_MESSAGE_CHARS);
        let r = fit_request(&big, history, &passages, &limits).unwrap();
        assert!(r.input_token_bound() <= limits.max_input_tokens);
        assert_eq!(r.messages.len(), 1);
        let tiny = ChatLimits {
            max_input_tokens: 8_000,
            ..ChatLimits::default()
        };
        let huge = "💀".repeat(MAX_MESSAGE_CHARS);
        assert_eq!(
            fit_request(&huge, vec![], &[], &tiny).unwrap_err().status(),
            422
        );
    }

    #[test]
    fn history_starts_with_a_user_and_ends_with_an_assistant() {
        let h = well_formed(vec![
            Message::assistant_text("a"),
            Message::user_text("q"),
            Message::assistant_text("a2"),
            Message::user_text("dangling"),
        ]);
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].role, MsgRole::User);
    }
}
