//! confirm-draft: `POST /farms/{farm_id}/drafts/{draft_id}/confirm` with an optional
//! `{"edits": {...}, "note": "..."}` (edits: the full edited payload), and
//! `POST /farms/{farm_id}/recommendations/{id}/approve` with an optional `{"note": "..."}`.
//! Both honour an `Idempotency-Key` header. The decision itself is
//! [`farmops::decisions::decide`]; this crate only parses the request.

use farmops::{
    config::Config,
    db::Db,
    decisions::{self, Decision, DecisionRequest},
    http::{self, IdentitySource},
    idempotency,
};
use lambda_http::{Body, Request, Response, http::Method};

/// Built once at cold start.
pub struct State {
    pub db: Db,
    pub identity: IdentitySource,
}

impl State {
    /// The pool from `FARMOPS_DATABASE_URL` (see [`farmops::config`]).
    pub async fn from_env() -> farmops::Result<State> {
        let config = Config::from_env().map_err(|e| farmops::Error::unexpected(e.to_string()))?;
        let db = farmops::db::connect_from_config(&config.database).await?;
        Ok(State {
            db,
            identity: IdentitySource::from_env(),
        })
    }
}

pub async fn handle(state: &State, req: Request) -> Response<Body> {
    decisions::response(route(state, &req).await)
}

async fn route(state: &State, req: &Request) -> farmops::Result<decisions::Decided> {
    let caller = http::caller(req, state.identity)?;
    let limit = http::DEFAULT_BODY_LIMIT;
    let (farm, decision) = match (req.method(), http::segments(req).as_slice()) {
        (&Method::POST, ["farms", farm, "drafts", id, "confirm"]) => (
            *farm,
            Decision::ConfirmDraft {
                draft_id: http::path_id(id, "draft")?,
                body: http::optional_json_body(req, limit)?,
            },
        ),
        (&Method::POST, ["farms", farm, "recommendations", id, "approve"]) => (
            *farm,
            Decision::ApproveRecommendation {
                id: http::path_id(id, "recommendation")?,
                body: http::optional_json_body(req, limit)?,
            },
        ),
        _ => return Err(http::no_route()),
    };
    let request = DecisionRequest {
        farm_id: http::path_id(farm, "farm")?,
        user_id: &caller.user_id,
        idempotency_key: http::header(req, idempotency::HEADER),
        decision,
        today: chrono::Utc::now().date_naive(),
    };
    decisions::decide(&state.db, request).await
}
