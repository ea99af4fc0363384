//! discard-draft: `POST /farms/{farm_id}/drafts/{draft_id}/discard` and
//! `POST /farms/{farm_id}/recommendations/{id}/reject`, both with `{"reason": "..."}`
//! (required, 1 to 500 characters). Both honour an `Idempotency-Key` header. The decision
//! itself is [`farmops::decisions::decide`]; this crate only parses the request.

use farmops::{
    decisions::{self, Decision, DecisionRequest},
    idempotency,
};
use farmops_http as http;
use lambda_http::{Body, Request, Response, http::Method};

/// The routes this function serves (see [`http::check_route`]).
pub const ROUTES: &[http::Route] = &[
    ("POST", "/farms/{farm_id}/drafts/{draft_id}/discard"),
    ("POST", "/farms/{farm_id}/recommendations/{id}/reject"),
];

/// Built once at cold start.
pub use farmops_http::DbState as State;

pub async fn handle(state: &State, req: Request) -> Response<Body> {
    http::decisions::response(route(state, &req).await)
}

async fn route(state: &State, req: &Request) -> farmops::Result<decisions::Decided> {
    let caller = http::caller(req, state.identity)?;
    http::check_route(req, ROUTES)?;
    let limit = http::DEFAULT_BODY_LIMIT;
    // An empty body parses as "no reason" and is refused with 422 like a blank reason.
    let (farm, decision) = match (req.method(), http::segments(req).as_slice()) {
        (&Method::POST, ["farms", farm, "drafts", id, "discard"]) => (
            *farm,
            Decision::DiscardDraft {
                draft_id: http::path_id(id, "draft")?,
                body: http::optional_json_body(req, limit)?,
            },
        ),
        (&Method::POST, ["farms", farm, "recommendations", id, "reject"]) => (
            *farm,
            Decision::RejectRecommendation {
                id: http::path_id(id, "recommendation")?,
                body: http::optional_json_body(req, limit)?,
            },
        ),
        _ => return Err(http::no_route()),
    };
    let request = DecisionRequest {
        farm_id: http::path_id(farm, "farm")?,
        user_id: &caller.user_id,
        idempotency_key: http::text_header(req, idempotency::HEADER)?,
        decision,
        today: chrono::Utc::now().date_naive(),
    };
    decisions::decide(&state.db, request).await
}
