//! evidence: `GET /farms/{farm_id}/evidence` (JSON, HTML or CSV by `Accept`; owner and
//! manager), `GET /farms/{farm_id}/credits` (owner and manager) and
//! `GET /farms/{farm_id}/drafts?status=` (every member). The work is in
//! [`farmops::evidence`]; this crate parses the request and picks the representation.

use farmops::{
    evidence::{self, EvidenceQuery, Format},
    http,
    membership::{self, Role},
};
use lambda_http::{Body, Request, Response, http::Method};

/// Built once at cold start.
pub use farmops::http::DbState as State;

pub async fn handle(state: &State, req: Request) -> Response<Body> {
    match route(state, &req).await {
        Ok(res) => res,
        Err(e) => http::error_response(&e),
    }
}

async fn route(state: &State, req: &Request) -> farmops::Result<Response<Body>> {
    let caller = http::caller(req, state.identity)?;
    let (farm, what) = match (req.method(), http::segments(req).as_slice()) {
        (&Method::GET, ["farms", farm, what @ ("evidence" | "credits" | "drafts")]) => {
            (http::path_id(farm, "farm")?, *what)
        }
        _ => return Err(http::no_route()),
    };
    let tx = state.db.tenant(farm).await?;
    let user = caller.user_id.as_str();
    let response = match what {
        "evidence" => {
            membership::require_role(&tx, user, "read the evidence", Role::may_read_evidence)
                .await?;
            let query = EvidenceQuery::parse(|k| http::query_param(req, k))?;
            let format = evidence::negotiate(http::header(req, "accept"))?;
            let page = evidence::evidence_page(&tx, &query).await?;
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
        "credits" => {
            membership::require_role(&tx, user, "read the credits", Role::may_read_evidence)
                .await?;
            http::json_response(200, &evidence::credit_statement(&tx).await?)
        }
        _ => {
            membership::member_role(&tx, user).await?;
            let status = evidence::parse_draft_status(http::query_param(req, "status"))?;
            let drafts = evidence::list_drafts(&tx, status).await?;
            http::json_response(200, &DraftList { drafts })
        }
    };
    tx.commit().await?;
    Ok(response)
}

#[derive(serde::Serialize)]
struct DraftList {
    drafts: Vec<farmops::drafts::Draft>,
}
