//! Step 4 of a turn: call the model, execute its tool calls, call it again with the results,
//! within the turn's caps, holding credits for each call before it is made.

use serde_json::{Value, json};

use super::{ChatDeps, evals, executor, tools};
use crate::{
    credits::{MeteredRun, NextCall},
    db::Db,
    error::{Error, Result},
    model::{Block, ChatRequest, Message, Role as MsgRole, StopReason, Usage},
};
use evals::Eval;
use executor::{Executor, Outcome, Planned};
use tools::Tool;

/// Framing a provider may add per message (role markers, block delimiters).
const MESSAGE_FRAMING_TOKENS: u64 = 16;

/// What the tool loop accumulates.
#[derive(Default)]
pub(super) struct LoopState {
    pub planned: Vec<Planned>,
    pub refused: Vec<Value>,
    pub evals: Vec<Eval>,
    pub reply: String,
}

/// The bound of the turn's first call: its input measured from the request as built (the
/// provider's own count where it has an exact one), its output the configured `maxTokens`,
/// shrinkable to [`super::MIN_OUTPUT_TOKENS`].
pub(super) fn first_call(deps: &ChatDeps<'_>, request: &ChatRequest) -> NextCall {
    let max = u64::from(deps.limits.max_output_tokens);
    NextCall {
        input_tokens: deps.model.input_token_bound(request),
        max_output_tokens: max,
        min_output_tokens: u64::from(super::MIN_OUTPUT_TOKENS).min(max),
    }
}

/// The input bound of the call after `previous`: what that call really read and wrote, plus
/// the tool results sent back and their framing; never above the request's own bound.
fn next_input_bound(
    deps: &ChatDeps<'_>,
    request: &ChatRequest,
    previous: Usage,
    results: &[Block],
) -> u64 {
    let results_bound: u64 = results
        .iter()
        .map(|b| serde_json::to_string(b).map_or(0, |s| s.len() as u64) + MESSAGE_FRAMING_TOKENS)
        .sum();
    let chained =
        previous.input_tokens + previous.output_tokens + results_bound + 2 * MESSAGE_FRAMING_TOKENS;
    chained.min(deps.model.input_token_bound(request))
}

const OUT_OF_CREDITS: &str =
    "(stopped: the farm has run out of credits for the next step; what is listed was saved)";
const OUT_OF_BUDGET: &str =
    "(stopped: your credit budget for this period is used up; what is listed was saved)";

/// Runs the loop. The first call is already held for (the run was opened with it); every
/// later one is held for before it is made, and when the farm cannot pay for it (or the
/// member's budget cannot take it) the turn ends with what it has done. A model (or database) error ends it; `run` keeps what was
/// consumed.
pub(super) async fn tool_loop(
    deps: &ChatDeps<'_>,
    executor: &Executor<'_>,
    run: &mut MeteredRun,
    mut request: ChatRequest,
    turn: &mut LoopState,
) -> Result<()> {
    let limits = deps.limits;
    let mut input_bound = first_call(deps, &request).input_tokens;
    loop {
        if request.input_token_bound() > limits.max_input_tokens {
            turn.reply
                .push_str(" (stopped: the turn reached its input limit)");
            return Ok(());
        }
        if run.calls() > 0 {
            let next = NextCall {
                input_tokens: input_bound,
                ..first_call(deps, &request)
            };
            match run.hold_for(deps.db, next).await {
                Ok(output) => request.max_tokens = u32::try_from(output).unwrap_or(u32::MAX),
                Err(
                    e @ (Error::InsufficientCredits { .. } | Error::MemberBudgetExceeded { .. }),
                ) => {
                    let why = match e {
                        Error::MemberBudgetExceeded { .. } => OUT_OF_BUDGET,
                        _ => OUT_OF_CREDITS,
                    };
                    turn.reply = format!("{} {why}", turn.reply.trim()).trim().to_string();
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        let response = deps.model.converse(&request).await?;
        run.record(response.usage);
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
        if run.calls() >= limits.max_model_calls {
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
        let sent = request.messages.last().map_or(&[][..], |m| &m.content[..]);
        input_bound = next_input_bound(deps, &request, response.usage, sent);
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
