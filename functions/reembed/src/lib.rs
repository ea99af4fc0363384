//! reembed: the farm's knowledge base.
//!
//! * `POST /farms/{farm_id}/documents` `{"title", "body"}` (worker and above; body up to
//!   200,000 characters, request up to 1 MiB): stored, chunked, embedded, metered. 201.
//! * `DELETE /farms/{farm_id}/documents/{id}` (manager, owner): the document and its
//!   embeddings in one transaction. 200.
//! * `POST /farms/{farm_id}/reembed` (manager, owner): re-embeds the farm's stale rows now. 200
//!   with the sweep report.
//! * The scheduled EventBridge sweep: the same Lambda receives the EventBridge envelope
//!   (`detail-type` and `source` keys); [`handle_event`] tells it from an API Gateway event and
//!   sweeps every farm with stale rows.
//!
//! The domain is [`farmops::documents`]; this crate only parses and routes.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `FARMOPS_EMBEDDER` | `titan` | `titan` (Bedrock, see [`farmops::aws`]) or `offline` |

use std::sync::Arc;

use farmops::{
    config::{Config, Env},
    db::Db,
    documents::{self, NewDocument},
    embed::Embedder,
};
use farmops_http::{self as http, IdentitySource};
use lambda_http::{
    Body, Request, Response, aws_lambda_events::apigw::ApiGatewayV2httpResponse, http::Method,
};
use serde_json::{Value, json};

/// Documents are large: a 200,000-character body in UTF-8 plus JSON escaping.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// The HTTP routes this function serves (see [`http::check_route`]).
pub const ROUTES: &[http::Route] = &[
    ("POST", "/farms/{farm_id}/documents"),
    ("DELETE", "/farms/{farm_id}/documents/{id}"),
    ("POST", "/farms/{farm_id}/reembed"),
];

/// Built once at cold start.
pub struct State {
    pub db: Db,
    pub identity: IdentitySource,
    pub embedder: Arc<dyn Embedder>,
}

impl State {
    pub async fn from_env() -> farmops::Result<State> {
        let unexpected =
            |e: farmops::config::ConfigError| farmops::Error::unexpected(e.to_string());
        let config = Config::from_env().map_err(unexpected)?;
        let db = farmops::db::connect_from_config(&config.database).await?;
        let env = Env(|k: &str| std::env::var(k).ok());
        let embedder =
            farmops::embed::embedder_from_env(&env, "titan", &Default::default()).await?;
        Ok(State {
            db,
            identity: IdentitySource::from_env(),
            embedder,
        })
    }
}

pub async fn handle(state: &State, req: Request) -> Response<Body> {
    http::respond(route(state, &req).await)
}

async fn route(state: &State, req: &Request) -> farmops::Result<(u16, Value)> {
    let caller = http::caller(req, state.identity)?;
    http::check_route(req, ROUTES)?;
    let embedder = state.embedder.as_ref();
    match (req.method(), http::segments(req).as_slice()) {
        (&Method::POST, ["farms", farm, "documents"]) => {
            let farm = http::path_id(farm, "farm")?;
            let doc: NewDocument = http::json_body(req, BODY_LIMIT)?;
            let added =
                documents::add_document(&state.db, embedder, farm, &caller.user_id, &doc).await?;
            Ok((201, json!(added)))
        }
        (&Method::DELETE, ["farms", farm, "documents", id]) => {
            let farm = http::path_id(farm, "farm")?;
            let id = http::path_id(id, "document")?;
            documents::delete_document(&state.db, farm, &caller.user_id, id).await?;
            Ok((200, json!({ "deleted": id })))
        }
        (&Method::POST, ["farms", farm, "reembed"]) => {
            let farm = http::path_id(farm, "farm")?;
            let report =
                documents::reembed_farm_as(&state.db, embedder, farm, &caller.user_id).await?;
            Ok((200, json!(report)))
        }
        _ => Err(http::no_route()),
    }
}

/// Whether a raw Lambda event is the EventBridge schedule (rather than API Gateway).
pub fn is_scheduled(event: &Value) -> bool {
    event.get("detail-type").is_some() && event.get("source").is_some()
}

/// The scheduled sweep: every farm with stale rows, batches of [`documents::SWEEP_BATCH`].
pub async fn sweep(state: &State) -> farmops::Result<Value> {
    let report =
        documents::sweep(&state.db, state.embedder.as_ref(), documents::SWEEP_BATCH).await?;
    Ok(json!({ "farms": report }))
}

/// One raw Lambda event: the schedule, or an API Gateway HTTP API event (or the Function URL
/// event `cargo lambda watch` sends, the same shape) parsed exactly as `lambda_http` does and
/// answered as an `ApiGatewayV2httpResponse`, the type API Gateway and `cargo lambda watch`
/// read back (every field, `cookies` included).
pub async fn handle_event(state: &State, event: Value) -> farmops::Result<Value> {
    if is_scheduled(&event) {
        let report = sweep(state).await?;
        tracing::info!(%report, "reembed sweep");
        return Ok(report);
    }
    let req = lambda_http::request::from_str(&event.to_string())
        .map_err(|e| farmops::Error::BadRequest(format!("not an API Gateway event: {e}")))?;
    let response = handle(state, req).await;
    let mut out = ApiGatewayV2httpResponse::default();
    out.status_code = i64::from(response.status().as_u16());
    out.headers = response.headers().clone();
    out.is_base64_encoded = matches!(response.body(), Body::Binary(_));
    out.body = match response.into_body() {
        Body::Empty => None,
        body => Some(body),
    };
    serde_json::to_value(out).map_err(|e| farmops::Error::unexpected(e.to_string()))
}
