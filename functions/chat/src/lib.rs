//! chat: `POST /farms/{farm_id}/chat` runs one governed AI turn ([`farmops::chat::run_turn`]);
//! `POST /farms/{farm_id}/runs/{run_id}/feedback` rates a run ([`farmops::chat::give_feedback`]).
//! Parse and authenticate here; everything else is in the shared crate.

use std::sync::Arc;

use farmops::{
    Error, Result,
    chat::{self, ChatDeps, ChatLimits, FeedbackRequest, TurnRequest},
    db::Db,
    model::ChatModel,
    rag::Retriever,
};
use farmops_http::{self as http, IdentitySource};
use lambda_http::{Body, Request, Response};
use serde_json::Value;

/// The routes this function serves (see [`http::check_route`]).
pub const ROUTES: &[http::Route] = &[
    ("POST", "/farms/{farm_id}/chat"),
    ("POST", "/farms/{farm_id}/runs/{run_id}/feedback"),
];

/// Built once at cold start.
pub struct State {
    pub db: Db,
    pub identity: IdentitySource,
    pub model: Arc<dyn ChatModel>,
    pub retriever: Arc<dyn Retriever>,
    pub limits: ChatLimits,
    /// Where low-balance alerts go (`FARMOPS_ALERT_BUS`); after a turn the farm's unsent
    /// alerts are published, best effort. `None`: the reconcile step sends them.
    pub alerts: Option<farmops::credits::alerts::AlertBus>,
}

pub async fn handle(state: &State, req: Request) -> Response<Body> {
    http::respond(route(state, &req).await)
}

async fn route(state: &State, req: &Request) -> Result<(u16, Value)> {
    let caller = http::caller(req, state.identity)?;
    http::check_route(req, ROUTES)?;
    match http::segments(req).as_slice() {
        ["farms", farm, "chat"] => {
            let farm_id = http::path_id(farm, "farm")?;
            let body: TurnRequest = http::json_body(req, chat::BODY_LIMIT)?;
            let deps = ChatDeps {
                db: &state.db,
                model: state.model.as_ref(),
                retriever: state.retriever.as_ref(),
                limits: &state.limits,
            };
            let turn = chat::run_turn(&deps, farm_id, &caller.user_id, &body).await?;
            if let Some(bus) = &state.alerts {
                farmops::credits::alerts::publish_best_effort(&state.db, bus, farm_id).await;
            }
            Ok((
                200,
                serde_json::to_value(turn).map_err(|e| Error::unexpected(e.to_string()))?,
            ))
        }
        ["farms", farm, "runs", run, "feedback"] => {
            let farm_id = http::path_id(farm, "farm")?;
            let run_id = http::path_id(run, "run")?;
            let body: FeedbackRequest = http::json_body(req, 16 * 1024)?;
            Ok((
                200,
                chat::give_feedback(&state.db, farm_id, &caller.user_id, run_id, &body).await?,
            ))
        }
        _ => Err(http::no_route()),
    }
}
