//! Test support (feature `testing`): each test gets its own database, cloned from a template
//! that was migrated once per migration set, and dropped when the test ends.
//!
//! | variable | default |
//! |---|---|
//! | `FARMOPS_TEST_ADMIN_URL` | `postgres://postgres:postgres@127.0.0.1:55432/postgres` (a superuser: creates databases and the `vector` extension) |
//! | `FARMOPS_TEST_HOST` / `FARMOPS_TEST_PORT` | `127.0.0.1` / `55432` |
//!
//! The roles `farmops_owner`, `farmops_app` and `farmops_billing` come from
//! `scripts/setup-postgres.sh`.

use anyhow::{Context, Result};
use tokio_postgres::NoTls;
use uuid::Uuid;

use crate::{credits, db::Db, db::migrate};

pub const OWNER_PASSWORD: &str = "farmops_owner";
pub const APP_PASSWORD: &str = "farmops_app";
pub const BILLING_PASSWORD: &str = "farmops_billing";

fn admin_url() -> String {
    std::env::var("FARMOPS_TEST_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:55432/postgres".into())
}

fn host_port() -> (String, String) {
    (
        std::env::var("FARMOPS_TEST_HOST").unwrap_or_else(|_| "127.0.0.1".into()),
        std::env::var("FARMOPS_TEST_PORT").unwrap_or_else(|_| "55432".into()),
    )
}

/// `postgres://user:password@host:port/database`.
pub fn url(user: &str, password: &str, database: &str) -> String {
    let (host, port) = host_port();
    format!("postgres://{user}:{password}@{host}:{port}/{database}")
}

async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("connecting to {}", redact(url)))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(a), Some(b)) if a < b => format!("{}://***{}", &url[..a], &url[b..]),
        _ => url.to_string(),
    }
}

/// Creates (once per migration set, under an advisory lock) and returns the template name.
pub async fn ensure_template() -> Result<String> {
    let name = format!("farmops_tpl_{}", migrate::fingerprint());
    let admin = connect(&admin_url()).await?;
    admin
        .batch_execute("SELECT pg_advisory_lock(727274)")
        .await?;
    let result = async {
        let exists = admin
            .query_typed(
                "SELECT 1 FROM pg_database WHERE datname = $1",
                &[(&name, tokio_postgres::types::Type::TEXT)],
            )
            .await?;
        if exists.is_empty() {
            let building = format!("{name}_building");
            admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
                .await?;
            admin
                .batch_execute(&format!("CREATE DATABASE {building} OWNER farmops_owner"))
                .await?;
            {
                let su = connect(&admin_url_for(&building)).await?;
                su.batch_execute("CREATE EXTENSION IF NOT EXISTS vector")
                    .await?;
                let owner = connect(&url("farmops_owner", OWNER_PASSWORD, &building)).await?;
                migrate::migrate(&owner)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}: {:?}", std::error::Error::source(&e)))?;
            }
            admin
                .batch_execute(&format!("ALTER DATABASE {building} RENAME TO {name}"))
                .await?;
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    admin
        .batch_execute("SELECT pg_advisory_unlock(727274)")
        .await?;
    result?;
    Ok(name)
}

/// A migrated database named `name` that outlives this process (a benchmark's cached data
/// set), cloned from the template unless it exists. Returns whether it was created now.
pub async fn ensure_database(name: &str) -> Result<bool> {
    let template = ensure_template().await?;
    let admin = connect(&admin_url()).await?;
    let exists = admin
        .query_typed(
            "SELECT 1 FROM pg_database WHERE datname = $1",
            &[(&name, tokio_postgres::types::Type::TEXT)],
        )
        .await?;
    if !exists.is_empty() {
        return Ok(false);
    }
    admin
        .batch_execute(&format!(
            "CREATE DATABASE {name} TEMPLATE {template} OWNER farmops_owner"
        ))
        .await?;
    Ok(true)
}

/// An empty database named `name` (the `vector` extension, owned by the owner role), not
/// migrated: for tests that migrate it step by step. Drop it with [`drop_database`].
pub async fn empty_database(name: &str) -> Result<()> {
    let admin = connect(&admin_url()).await?;
    admin
        .batch_execute(&format!("CREATE DATABASE {name} OWNER farmops_owner"))
        .await?;
    admin_client(name)
        .await?
        .batch_execute("CREATE EXTENSION IF NOT EXISTS vector")
        .await?;
    Ok(())
}

/// Drops a database made by [`ensure_database`] (connections and all).
pub async fn drop_database(name: &str) -> Result<()> {
    let admin = connect(&admin_url()).await?;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await?;
    Ok(())
}

/// A superuser connection to `database` (bulk loads that bypass row-level security).
pub async fn admin_client(database: &str) -> Result<tokio_postgres::Client> {
    connect(&admin_url_for(database)).await
}

fn admin_url_for(database: &str) -> String {
    let admin = admin_url();
    match admin.rfind('/') {
        Some(i) => format!("{}/{database}", &admin[..i]),
        None => admin,
    }
}

/// SQL for a seeded history written straight into the ledger (as the owner, in bulk): takes
/// `credits` from the farm's one credit lot with a single move, so the balance still equals
/// the lots at commit (migration 0080). The farm must have exactly one open lot.
pub fn seeded_lot_debit(farm: Uuid, credits: i64) -> String {
    format!(
        "WITH lot AS (UPDATE credit_lots SET remaining = remaining - {credits}
                       WHERE farm_id = '{farm}' AND closed_at IS NULL RETURNING id)
         INSERT INTO credit_lot_moves (farm_id, lot_id, kind, delta)
           SELECT '{farm}', id, 'adjust', -{credits} FROM lot;"
    )
}

/// An isolated, migrated database, dropped (connections and all) when this value drops.
pub struct TestDb {
    pub name: String,
    /// Pool connected as the application role (row-level security applies).
    pub app: Db,
    /// Pool connected as the owner (migrations, operator work).
    pub owner: Db,
}

impl TestDb {
    pub async fn new() -> Result<TestDb> {
        let template = ensure_template().await?;
        let name = format!("farmops_test_{}", Uuid::new_v4().simple());
        let admin = connect(&admin_url()).await?;
        admin
            .batch_execute(&format!(
                "CREATE DATABASE {name} TEMPLATE {template} OWNER farmops_owner"
            ))
            .await?;
        let app = Db::for_url(&self::url("farmops_app", APP_PASSWORD, &name))?;
        let owner = Db::for_url(&self::url("farmops_owner", OWNER_PASSWORD, &name))?;
        Ok(TestDb { name, app, owner })
    }

    pub fn app_url(&self) -> String {
        url("farmops_app", APP_PASSWORD, &self.name)
    }

    pub fn owner_url(&self) -> String {
        url("farmops_owner", OWNER_PASSWORD, &self.name)
    }

    pub fn billing_url(&self) -> String {
        url("farmops_billing", BILLING_PASSWORD, &self.name)
    }

    /// A pool of the billing role (the Paystack webhook's, migration 0081) with room for
    /// `size` concurrent connections.
    pub fn billing_pool(&self, size: usize) -> Result<Db> {
        self.pool_of(self.billing_url(), size)
    }

    /// A plain connection as the billing role.
    pub async fn billing_client(&self) -> Result<tokio_postgres::Client> {
        connect(&self.billing_url()).await
    }

    /// Creates or replaces a credit pack (as the owner).
    pub async fn pack(&self, name: &str, credits: i64, price_kobo: i64) -> Result<()> {
        crate::payments::set_pack(
            &self.owner,
            &crate::payments::CreditPack {
                name: name.into(),
                credits,
                price_kobo,
            },
        )
        .await?;
        Ok(())
    }

    /// A pool of the application role with room for `size` concurrent connections.
    pub fn app_pool(&self, size: usize) -> Result<Db> {
        self.pool_of(self.app_url(), size)
    }

    /// A pool of the owner role with room for `size` concurrent connections.
    pub fn owner_pool(&self, size: usize) -> Result<Db> {
        self.pool_of(self.owner_url(), size)
    }

    fn pool_of(&self, url: String, size: usize) -> Result<Db> {
        let mut config = crate::config::DatabaseConfig::for_url(url);
        config.pool_size = size;
        // many scram handshakes at once on a busy 2-core machine take a while
        config.connect_timeout = std::time::Duration::from_secs(30);
        Ok(Db::connect(
            &config,
            std::sync::Arc::new(crate::db::UrlPassword),
            crate::db::Tls::Disabled,
        )?)
    }

    /// A plain connection as the owner.
    pub async fn owner_client(&self) -> Result<tokio_postgres::Client> {
        connect(&self.owner_url()).await
    }

    /// A plain connection as the application role (no tenant set).
    pub async fn app_client(&self) -> Result<tokio_postgres::Client> {
        connect(&self.app_url()).await
    }

    /// Creates a farm (as the owner) with `credits` granted and returns its id.
    pub async fn farm(&self, name: &str, credits: i64) -> Result<Uuid> {
        let id = Uuid::new_v4();
        let owner = self.owner_client().await?;
        owner
            .query_typed(
                "INSERT INTO farms (id, name) VALUES ($1, $2)",
                &[
                    (&id, tokio_postgres::types::Type::UUID),
                    (&name, tokio_postgres::types::Type::TEXT),
                ],
            )
            .await?;
        if credits > 0 {
            let tx = self.owner.tenant(id).await?;
            credits::grant_credits(&tx, credits, "test", "test grant").await?;
            tx.commit().await?;
        }
        Ok(id)
    }

    /// Adds `user_id` to a farm with `role` (as the owner).
    pub async fn member(&self, farm_id: Uuid, user_id: &str, role: &str) -> Result<()> {
        let owner = self.owner_client().await?;
        owner
            .query_typed(
                "INSERT INTO farm_members (farm_id, user_id, role) VALUES ($1, $2, $3)",
                &[
                    (&farm_id, tokio_postgres::types::Type::UUID),
                    (&user_id, tokio_postgres::types::Type::TEXT),
                    (&role, tokio_postgres::types::Type::TEXT),
                ],
            )
            .await?;
        Ok(())
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        self.app.close();
        self.owner.close();
        let name = self.name.clone();
        // Drop on a thread of its own: this may run inside or outside a runtime.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let admin = connect(&admin_url()).await.ok()?;
                admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// A real API Gateway HTTP API (payload 2.0) event with a JWT authorizer, as AWS sends it
/// (`shared/fixtures/apigw-v2-request-jwt-authorizer.json`), changed to this route: method,
/// path, `sub` claim (None: no claims at all), headers and body. Parsed by lambda_http exactly
/// as in Lambda.
pub fn apigw_request(
    method: &str,
    path_and_query: &str,
    sub: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> lambda_http::Request {
    let mut event: serde_json::Value = serde_json::from_str(include_str!(
        "../fixtures/apigw-v2-request-jwt-authorizer.json"
    ))
    .expect("fixture is JSON");
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    event["rawPath"] = path.into();
    event["rawQueryString"] = query.into();
    let mut params = serde_json::Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        params.insert(k.to_string(), v.into());
    }
    event["queryStringParameters"] = params.into();
    event["pathParameters"] = serde_json::json!({});
    event["cookies"] = serde_json::json!([]);
    event["requestContext"]["http"]["method"] = method.into();
    event["requestContext"]["http"]["path"] = path.into();
    let claims = &mut event["requestContext"]["authorizer"]["jwt"]["claims"];
    *claims = serde_json::json!({"iss": "https://issuer.example", "aud": "farmops"});
    match sub {
        Some(sub) => claims["sub"] = sub.into(),
        None => event["requestContext"]["authorizer"] = serde_json::Value::Null,
    }
    let mut h = serde_json::Map::new();
    for (k, v) in headers {
        h.insert(k.to_ascii_lowercase(), (*v).into());
    }
    event["headers"] = h.into();
    event["body"] = body.map(Into::into).unwrap_or(serde_json::Value::Null);
    event["isBase64Encoded"] = false.into();
    lambda_http::request::from_str(&event.to_string()).expect("lambda_http parses the event")
}

/// The EventBridge scheduled event as AWS sends it (`shared/fixtures/eventbridge-scheduled-event.json`).
pub fn eventbridge_scheduled_event() -> serde_json::Value {
    serde_json::from_str(include_str!("../fixtures/eventbridge-scheduled-event.json"))
        .expect("fixture is JSON")
}

/// Response body as JSON.
pub fn body_json(response: &lambda_http::Response<lambda_http::Body>) -> serde_json::Value {
    match response.body() {
        lambda_http::Body::Text(t) => {
            serde_json::from_str(t).unwrap_or(serde_json::Value::String(t.clone()))
        }
        lambda_http::Body::Binary(b) => {
            serde_json::from_slice(b).unwrap_or(serde_json::Value::Null)
        }
        _ => serde_json::Value::Null,
    }
}

pub mod converse;
pub mod eventbridge;
pub mod faults;
pub mod kms;
pub mod retrieval;
pub mod stub;

/// The OpenAPI document (`docs/openapi.yaml`) as a conformance check for handler responses.
pub mod openapi {
    use serde_json::{Value, json};

    /// `docs/openapi.yaml` as JSON.
    pub fn document() -> Value {
        serde_yaml::from_str(include_str!("../../docs/openapi.yaml"))
            .expect("docs/openapi.yaml is YAML")
    }

    fn resolve<'a>(doc: &'a Value, node: &'a Value) -> &'a Value {
        match node.get("$ref").and_then(Value::as_str) {
            Some(r) => doc
                .pointer(r.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("unresolved $ref {r}")),
            None => node,
        }
    }

    /// Why `body` (answered with `status` to `method path`, the path as the document writes
    /// it, e.g. `/farms/{farm_id}/chat`) does not conform to the document; empty when it does.
    /// An undocumented route or status is a failure too.
    pub fn conformance_errors(method: &str, path: &str, status: u16, body: &Value) -> Vec<String> {
        conformance_errors_as(method, path, status, "application/json", body)
    }

    /// [`conformance_errors`] for a response of media type `media` (`text/csv`, ...): a text
    /// body is checked as a JSON string against the schema the document gives that type.
    pub fn conformance_errors_as(
        method: &str,
        path: &str,
        status: u16,
        media: &str,
        body: &Value,
    ) -> Vec<String> {
        let doc = document();
        let method = method.to_lowercase();
        let Some(operation) = doc["paths"][path].get(&method) else {
            return vec![format!("{method} {path} is not in the document")];
        };
        let Some(response) = operation["responses"].get(status.to_string()) else {
            return vec![format!(
                "{method} {path}: status {status} is not documented"
            )];
        };
        let response = resolve(&doc, response);
        let pointer = format!(
            "/content/{}/schema",
            media.replace('~', "~0").replace('/', "~1")
        );
        let Some(schema) = response.pointer(&pointer) else {
            return vec![format!("{method} {path} {status}: no {media} schema")];
        };
        // The operation's schema as the root, with the document's components beside it so
        // `#/components/schemas/...` references resolve.
        let mut root = json!({ "$schema": "https://json-schema.org/draft/2020-12/schema" });
        root["components"] = doc["components"].clone();
        root["allOf"] = json!([schema]);
        let validator = jsonschema::validator_for(&root)
            .unwrap_or_else(|e| panic!("{method} {path} {status}: invalid schema: {e}"));
        validator
            .iter_errors(body)
            .map(|e| format!("{method} {path} {status}: {e} at {}", e.instance_path))
            .collect()
    }

    /// The document's path template that `path` (a real request path) matches, e.g.
    /// `/farms/<uuid>/chat` -> `/farms/{farm_id}/chat`; `None` for an undocumented path.
    pub fn route_template(method: &str, path: &str) -> Option<String> {
        let doc = document();
        let method = method.to_lowercase();
        let want: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        doc["paths"]
            .as_object()?
            .iter()
            .find_map(|(template, item)| {
                let have: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
                let matches = have.len() == want.len()
                    && have
                        .iter()
                        .zip(&want)
                        .all(|(h, w)| h == w || (h.starts_with('{') && h.ends_with('}')));
                (matches && item.get(&method).is_some()).then(|| template.clone())
            })
    }

    /// [`assert_conforms`] for a real request path. A path the document does not have (a
    /// test of an unknown route) must still answer the document's error shape.
    pub fn assert_conforms_path(
        method: &str,
        path: &str,
        response: &lambda_http::Response<lambda_http::Body>,
    ) {
        match route_template(method, path) {
            Some(template) => assert_conforms(method, &template, response),
            None => {
                let doc = document();
                let mut root = json!({ "$ref": "#/components/schemas/Error" });
                root["components"] = doc["components"].clone();
                let body = super::body_json(response);
                let validator = jsonschema::validator_for(&root).expect("Error schema");
                assert!(
                    response.status().as_u16() >= 400 && validator.is_valid(&body),
                    "{method} {path} is not in docs/openapi.yaml and answered {} {body}",
                    response.status()
                );
            }
        }
    }

    /// The routes the document gives `function` (`x-farmops-function`): `(METHOD, path)`,
    /// sorted.
    pub fn routes_of(function: &str) -> Vec<(String, String)> {
        let doc = document();
        let mut routes: Vec<(String, String)> = doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(_, op)| op["x-farmops-function"] == function)
                    .map(|(method, _)| (method.to_uppercase(), path.clone()))
            })
            .collect();
        routes.sort();
        routes
    }

    /// Panics unless a function's route table (`farmops::http::Route`s) is exactly the routes
    /// the document gives it.
    pub fn assert_routes_are_documented(function: &str, routes: &[crate::http::Route]) {
        let mut ours: Vec<(String, String)> = routes
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        ours.sort();
        assert_eq!(
            ours,
            routes_of(function),
            "{function}: ROUTES vs docs/openapi.yaml"
        );
    }

    /// A request a function must answer with 405: a path of the document's for `function`
    /// (`{...}` segments filled with an id) with a method the document does not give it.
    #[derive(Debug)]
    pub struct UnsupportedMethod {
        pub method: &'static str,
        pub path: String,
        /// The path's methods, the `Allow` header's content.
        pub allow: Vec<String>,
    }

    /// Every [`UnsupportedMethod`] of `function`'s paths, over the methods OpenAPI knows.
    pub fn unsupported_methods(function: &str) -> Vec<UnsupportedMethod> {
        const METHODS: [&str; 8] = [
            "GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE",
        ];
        let routes = routes_of(function);
        let paths: std::collections::BTreeSet<&String> = routes.iter().map(|(_, p)| p).collect();
        let id = uuid::Uuid::new_v4().to_string();
        paths
            .into_iter()
            .flat_map(|template| {
                let allow: Vec<String> = routes
                    .iter()
                    .filter(|(_, p)| p == template)
                    .map(|(m, _)| m.clone())
                    .collect();
                let path = template
                    .split('/')
                    .map(|s| if s.starts_with('{') { id.as_str() } else { s })
                    .collect::<Vec<_>>()
                    .join("/");
                METHODS
                    .into_iter()
                    .filter(|m| !allow.iter().any(|a| a == m))
                    .map(|method| UnsupportedMethod {
                        method,
                        path: path.clone(),
                        allow: allow.clone(),
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Panics unless `response` is the 405 the document describes for `case`
    /// (`components.responses.MethodNotAllowed`): the status, an `Allow` header naming
    /// exactly the path's methods, and the error body.
    pub fn assert_method_not_allowed(
        case: &UnsupportedMethod,
        response: &lambda_http::Response<lambda_http::Body>,
    ) {
        let body = super::body_json(response);
        assert_eq!(
            response.status().as_u16(),
            405,
            "{} {}: {body}",
            case.method,
            case.path
        );
        let mut allow: Vec<String> = response
            .headers()
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .split(',')
            .map(|m| m.trim().to_string())
            .collect();
        allow.sort();
        let mut want = case.allow.clone();
        want.sort();
        assert_eq!(allow, want, "{} {}: Allow", case.method, case.path);
        let doc = document();
        let schema = doc
            .pointer("/components/responses/MethodNotAllowed/content/application~1json/schema")
            .expect("components.responses.MethodNotAllowed");
        let mut root = json!({ "allOf": [schema] });
        root["components"] = doc["components"].clone();
        let validator = jsonschema::validator_for(&root).expect("MethodNotAllowed schema");
        assert!(
            validator.is_valid(&body),
            "{} {}: not the document's 405 body: {body}",
            case.method,
            case.path
        );
    }

    /// Whether the document's schema for query or header parameter `name` of `method path`
    /// allows `value` (formats such as `date` and `date-time` asserted).
    pub fn parameter_allows(method: &str, path: &str, name: &str, value: &str) -> bool {
        let doc = document();
        let operation = &doc["paths"][path][method.to_lowercase()];
        let parameter = operation["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .map(|p| resolve(&doc, p))
            .find(|p| {
                p["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
            .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"));
        let mut root = json!({ "allOf": [parameter["schema"]] });
        root["components"] = doc["components"].clone();
        jsonschema::options()
            .should_validate_formats(true)
            .build(&root)
            .expect("parameter schema")
            .is_valid(&json!(value))
    }

    /// Panics unless the handler's response conforms to the document: its status, its
    /// content type (documented for that status) and its body (JSON, or text as a string).
    pub fn assert_conforms(
        method: &str,
        path: &str,
        response: &lambda_http::Response<lambda_http::Body>,
    ) {
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let media = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let body = if media == "application/json" {
            super::body_json(response)
        } else {
            match response.body() {
                lambda_http::Body::Text(t) => Value::String(t.clone()),
                lambda_http::Body::Binary(b) => {
                    Value::String(String::from_utf8_lossy(b).into_owned())
                }
                _ => Value::Null,
            }
        };
        let errors = conformance_errors_as(method, path, response.status().as_u16(), &media, &body);
        assert!(
            errors.is_empty(),
            "response does not conform to docs/openapi.yaml:\n{}\nbody: {body}",
            errors.join("\n")
        );
    }
}
