//! evidence: `GET /farms/{farm_id}/evidence` (JSON, HTML or CSV by `Accept`; owner and
//! manager), `GET /farms/{farm_id}/credits` (owner and manager) and
//! `GET /farms/{farm_id}/drafts?status=` (every member), and the app's reads of a farm
//! ([`farmops::farm`]): `conversations`, `conversations/{id}/messages`, `recommendations`,
//! `records`, `memories`, `settings`, `members`, `grants`, `members/{user_id}/usage`; and `GET
//! /farms/{farm_id}/evidence/export` (owners), the evidence chain's bundle. The work is in the shared crate; this crate
//! parses the request and picks the representation.

use farmops::{
    evidence::{self, Format},
    farm,
};
use farmops_http as http;
use lambda_http::{Body, Request, Response, http::Method};

/// The routes this function serves (see [`http::check_route`]).
pub const ROUTES: &[http::Route] = &[
    ("GET", "/farms/{farm_id}/evidence"),
    ("GET", "/farms/{farm_id}/credits"),
    ("GET", "/farms/{farm_id}/drafts"),
    ("GET", "/farms/{farm_id}/conversations"),
    ("GET", "/farms/{farm_id}/conversations/{id}/messages"),
    ("GET", "/farms/{farm_id}/recommendations"),
    ("GET", "/farms/{farm_id}/records"),
    ("GET", "/farms/{farm_id}/memories"),
    ("GET", "/farms/{farm_id}/settings"),
    ("GET", "/farms/{farm_id}/members"),
    ("GET", "/farms/{farm_id}/grants"),
    ("GET", "/farms/{farm_id}/members/{user_id}/usage"),
    ("GET", "/farms/{farm_id}/evidence/export"),
];

/// Built once at cold start.
pub use farmops_http::DbState as State;

pub async fn handle(state: &State, req: Request) -> Response<Body> {
    match route(state, &req).await {
        Ok(res) => res,
        Err(e) => http::error_response(&e),
    }
}

async fn route(state: &State, req: &Request) -> farmops::Result<Response<Body>> {
    let caller = http::caller(req, state.identity)?;
    http::check_route(req, ROUTES)?;
    let segments = http::segments(req);
    let (farm, what) = match (req.method(), segments.as_slice()) {
        (&Method::GET, ["farms", farm, "evidence", "export"]) => {
            let tx = state.db.tenant(http::path_id(farm, "farm")?).await?;
            return export(tx, req, &caller.user_id).await;
        }
        (&Method::GET, ["farms", farm, what @ ("evidence" | "credits" | "drafts")]) => {
            (http::path_id(farm, "farm")?, *what)
        }
        (&Method::GET, ["farms", farm, rest @ ..]) => {
            let tx = state.db.tenant(http::path_id(farm, "farm")?).await?;
            return farm_read(tx, req, &caller.user_id, rest).await;
        }
        _ => return Err(http::no_route()),
    };
    let tx = state.db.tenant(farm).await?;
    let user = caller.user_id.as_str();
    let response = match what {
        "evidence" => {
            let (format, page) = evidence::read_evidence(
                &tx,
                user,
                |k| http::query_param(req, k),
                http::header(req, "accept"),
            )
            .await?;
            match format {
                Format::Json => http::json_response(200, &page),
                Format::Html => {
                    let mut res = http::response(
                        200,
                        format.content_type(),
                        evidence::html::render(&page, None),
                    );
                    if let Ok(v) = evidence::html::content_security_policy().parse() {
                        res.headers_mut().insert("content-security-policy", v);
                    }
                    res
                }
                Format::Csv => {
                    http::response(200, format.content_type(), evidence::csv::render(&page))
                }
            }
        }
        "credits" => http::json_response(200, &evidence::read_credits(&tx, user).await?),
        _ => {
            let status = http::query_param(req, "status");
            let drafts = evidence::read_drafts(&tx, user, status).await?;
            http::json_response(200, &DraftList { drafts })
        }
    };
    tx.commit().await?;
    Ok(response)
}

/// `GET /farms/{farm_id}/evidence/export?from=&to=` (owners): the evidence bundle of
/// `docs/evidence-chain.md`, which `farmops verify` checks offline.
async fn export(
    tx: farmops::db::TenantTx,
    req: &Request,
    user: &str,
) -> farmops::Result<Response<Body>> {
    let bundle = evidence::export_evidence(&tx, user, |k| http::query_param(req, k)).await?;
    tx.commit().await?;
    Ok(http::json_response(200, &bundle))
}

/// The app's reads of a farm: one shared function each, JSON 200.
async fn farm_read(
    tx: farmops::db::TenantTx,
    req: &Request,
    user: &str,
    rest: &[&str],
) -> farmops::Result<Response<Body>> {
    let param = |k: &str| http::query_param(req, k);
    let body = match rest {
        ["conversations"] => json(farm::conversations::list(&tx, user, param).await?),
        ["conversations", id, "messages"] => {
            let id = http::path_id(id, "conversation")?;
            json(farm::conversations::messages(&tx, user, id, param).await?)
        }
        ["recommendations"] => json(farm::recommendations::list(&tx, user, param).await?),
        ["records"] => json(farm::records::list(&tx, user, param).await?),
        ["memories"] => json(farm::memories::list(&tx, user, param).await?),
        ["settings"] => json(farm::settings::get(&tx, user).await?),
        ["members"] => json(farm::members::list(&tx, user, param).await?),
        ["grants"] => json(farm::grants::list(&tx, user).await?),
        ["members", member, "usage"] => json(farm::budgets::usage(&tx, user, member).await?),
        _ => return Err(http::no_route()),
    };
    tx.commit().await?;
    Ok(body)
}

fn json(body: impl serde::Serialize) -> Response<Body> {
    http::json_response(200, &body)
}

#[derive(serde::Serialize)]
struct DraftList {
    drafts: Vec<farmops::drafts::Draft>,
}
