//! One governed AI turn, end to end, and feedback on a run.
//!
//! A turn, and its database round trips (with NoRetrieval; each read-tool call adds one):
//!
//! 1. ONE statement (sent with `BEGIN` + tenant in the same round trip): the caller's role,
//!    the farm's autonomy, whether the conversation is the caller's, and its last messages;
//!    policy in Rust: 404 not a member, 403 viewer, 404 foreign conversation ([`context`]).
//!    [1 RT]
//! 2. retrieval (tenant-scoped [`Retriever`]) in the same transaction, before any debit; the
//!    first request is built within the input cap ([`request`]);
//! 3. the run opens holding what its FIRST call can cost (input measured from that request,
//!    output `maxTokens`) and COMMITs, pipelined ([`crate::credits::MeteredRun::open`]), so no
//!    lock is held across a model call. A farm that cannot pay the configured `maxTokens` gets
//!    a smaller one (down to [`MIN_OUTPUT_TOKENS`]); 402 only when not even that fits, naming
//!    the minimum needed. [1 RT; 2 when shrunk]
//! 4. the tool loop ([`tool_loop`]): the model proposes, the [`executor`] validates, resolves
//!    autonomy and PLANS writes (nothing is written yet); before each later call the run tops
//!    its hold up to what that call can cost [+1 RT per top-up], and when the farm cannot pay
//!    the turn ends there with what it has done;
//! 5. evals (schema conformance per tool call, clinical safety on the reply);
//! 6. ONE transaction, its statements pipelined in one round trip: the caller's role read
//!    again under a lock on their membership (removed: 404, viewer: 403, nothing saved but
//!    the run's settlement), settle the run with the real usage, the planned
//!    drafts/records/recommendations, the evals, the conversation and its two messages; then
//!    COMMIT ([`persist`]). [2 RT]
//!
//! Total: 4 round trips for a turn without read tools or top-ups (a test counts them). A model
//! failure settles the run as failed (charging only what the calls that succeeded consumed)
//! with its evals, pipelined, then commits (2 RT); nothing else of the turn is written; 502/503.

mod context;
pub mod evals;
pub mod executor;
mod feedback;
mod limits;
mod persist;
mod request;
mod response;
mod tool_loop;
pub mod tools;

pub(crate) use persist::store_evals;

use chrono::Utc;
use uuid::Uuid;

use crate::{
    credits::{self, Feature, MeteredRun, RunSpec},
    db::Db,
    error::Result,
    model::ChatModel,
    rag::Retriever,
};
use executor::Executor;
pub use feedback::{FeedbackRequest, give_feedback};
pub use limits::{ChatLimits, MIN_OUTPUT_TOKENS};
pub use request::{BODY_LIMIT, MAX_MESSAGE_CHARS, TurnRequest};
pub use response::{CreditsView, TurnResponse, UsageView};
use tool_loop::LoopState;

/// What the turn needs, built once at cold start.
pub struct ChatDeps<'a> {
    pub db: &'a Db,
    pub model: &'a dyn ChatModel,
    pub retriever: &'a dyn Retriever,
    pub limits: &'a ChatLimits,
}

/// Runs one chat turn for `user_id` on `farm_id`. See the module documentation.
#[tracing::instrument(skip(deps, request), fields(farm_id = %farm_id))]
pub async fn run_turn(
    deps: &ChatDeps<'_>,
    farm_id: Uuid,
    user_id: &str,
    request: &TurnRequest,
) -> Result<TurnResponse> {
    let message = request::validate_message(&request.message)?;
    let model = deps.model.model_id().to_string();
    let price = credits::priced(&model)?;

    // 1-3: context, retrieval, the run opened with its first call held for.
    let tx = deps.db.tenant(farm_id).await?;
    let history = deps.limits.history_messages;
    let ctx = context::load_context(&tx, user_id, request.conversation_id, history).await?;
    ctx.authorize()?;
    let passages = deps.retriever.retrieve(&tx, message, 4).await?;
    let mut first = request::fit_request(message, ctx.history, &passages, deps.limits)?;
    let summary: String = message.chars().take(200).collect();
    let spec = RunSpec {
        feature: Feature::Chat,
        model: &model,
        price,
        user_id: Some(user_id),
        request_summary: Some(&summary),
    };
    let (mut run, output) =
        MeteredRun::open(deps.db, tx, spec, tool_loop::first_call(deps, &first)).await?;
    first.max_tokens = u32::try_from(output).unwrap_or(first.max_tokens);

    // 4: the tool loop.
    let executor = Executor {
        farm_id,
        user_id,
        autonomy: &ctx.autonomy,
        today: Utc::now().date_naive(),
    };
    let mut turn = LoopState::default();
    if let Err(e) = tool_loop::tool_loop(deps, &executor, &mut run, first, &mut turn).await {
        persist::save_failure(deps.db, &run, &turn.evals, &e).await;
        return Err(e);
    }

    // 5: evals on the reply; 6: save and settle.
    let (reply, reply_withheld) = screen_reply(&turn.reply, &mut turn.evals);
    let conversation_id = request.conversation_id.unwrap_or_else(Uuid::new_v4);
    let finished = persist::FinishedTurn {
        user_id,
        conversation_id,
        message,
        reply: &reply,
        planned: &turn.planned,
        evals: &turn.evals,
    };
    let (settled, written) = persist::save_turn(deps.db, &run, &finished).await?;
    let answer = response::Turn {
        reply,
        reply_withheld,
        conversation_id,
        run_id: run.run_id(),
        model,
        refused: turn.refused,
        evals: turn.evals,
        usage: run.used(),
        calls: run.calls(),
        holds: run.holds(),
        calls_over_bound: run.calls_over_bound(),
    };
    Ok(TurnResponse::new(answer, written, &settled))
}

/// Step 5: the clinical safety eval on the reply; an unsafe reply is withheld (the farmer
/// gets [`evals::SAFE_REPLY`]).
fn screen_reply(reply: &str, evals: &mut Vec<evals::Eval>) -> (String, bool) {
    let reply = match reply.trim() {
        "" => "(no reply)",
        r => r,
    };
    let clinical = evals::clinical_eval("reply", reply);
    let withheld = !clinical.passed || evals.iter().any(evals::is_guardrail_block);
    evals.push(clinical);
    if withheld {
        (evals::SAFE_REPLY.to_string(), true)
    } else {
        (reply.to_string(), false)
    }
}
