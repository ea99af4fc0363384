//! farm: the app's writes to a farm ([`farmops::farm`]):
//! `PUT /farms/{farm_id}/settings/autonomy` (owner), `PUT /farms/{farm_id}/members/{user_id}`
//! (owner; managers add workers and viewers), `DELETE /farms/{farm_id}/members/{user_id}`
//! (owner), `PUT /farms/{farm_id}/members/{user_id}/budget` (owner; managers for workers and
//! viewers), `PUT /farms/{farm_id}/alerts` (owner, manager: low-balance thresholds) and
//! `DELETE /farms/{farm_id}/memories/{id}` (owner, manager). This crate parses
//! the request; the shared crate and the database's doors decide.

use farmops::{
    autonomy::AutonomyChange,
    farm::{alerts, budgets, members, memories, settings},
};
use farmops_http as http;
use lambda_http::{Body, Request, Response, http::Method};

/// The routes this function serves (see [`http::check_route`]).
pub const ROUTES: &[http::Route] = &[
    ("PUT", "/farms/{farm_id}/settings/autonomy"),
    ("PUT", "/farms/{farm_id}/members/{user_id}"),
    ("DELETE", "/farms/{farm_id}/members/{user_id}"),
    ("PUT", "/farms/{farm_id}/members/{user_id}/budget"),
    ("PUT", "/farms/{farm_id}/alerts"),
    ("DELETE", "/farms/{farm_id}/memories/{id}"),
];

/// Built once at cold start.
pub use farmops_http::DbState as State;

/// The largest body a write of this function accepts.
pub const BODY_LIMIT: usize = 8 * 1024;

pub async fn handle(state: &State, req: Request) -> Response<Body> {
    match route(state, &req).await {
        Ok(res) => res,
        Err(e) => http::error_response(&e),
    }
}

async fn route(state: &State, req: &Request) -> farmops::Result<Response<Body>> {
    let caller = http::caller(req, state.identity)?;
    http::check_route(req, ROUTES)?;
    let user = caller.user_id.as_str();
    let segments = http::segments(req);
    let (method, farm, rest) = match segments.as_slice() {
        ["farms", farm, rest @ ..] => (req.method(), http::path_id(farm, "farm")?, rest),
        _ => return Err(http::no_route()),
    };
    let tx = state.db.tenant(farm).await?;
    let body = match (method, rest) {
        (&Method::PUT, ["settings", "autonomy"]) => {
            let change: AutonomyChange = http::json_body(req, BODY_LIMIT)?;
            json(settings::set_autonomy(&tx, user, &change).await?)
        }
        (&Method::PUT, ["members", member]) => {
            let change: members::RoleChange = http::json_body(req, BODY_LIMIT)?;
            json(members::set_role(&tx, user, member, &change).await?)
        }
        (&Method::DELETE, ["members", member]) => json(members::remove(&tx, user, member).await?),
        (&Method::PUT, ["alerts"]) => {
            let body: serde_json::Value = http::json_body(req, BODY_LIMIT)?;
            json(alerts::set(&tx, user, &body).await?)
        }
        (&Method::PUT, ["members", member, "budget"]) => {
            let change: serde_json::Value = http::json_body(req, BODY_LIMIT)?;
            json(budgets::set(&tx, user, member, &change).await?)
        }
        (&Method::DELETE, ["memories", id]) => {
            let id = http::path_id(id, "memory")?;
            json(memories::forget(&tx, user, id).await?)
        }
        _ => return Err(http::no_route()),
    };
    tx.commit().await?;
    Ok(body)
}

fn json(body: impl serde::Serialize) -> Response<Body> {
    http::json_response(200, &body)
}
