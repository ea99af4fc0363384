//! HTTP helpers every handler uses: who is calling, which route, the JSON body within its
//! limit, and the ONE mapping from [`Error`] to a response.
//!
//! Routes are matched on the request path itself (not on API Gateway's `pathParameters`), so
//! the same handler serves API Gateway and `cargo lambda watch` alike. Each function declares
//! its routes once as a table of [`Route`]s (the OpenAPI document's methods and paths; its
//! tests check the two agree) and calls [`check_route`] first: a path it does not serve is a
//! 404, a path it serves with another method a 405 with an `Allow` header.

use lambda_http::{Body, Request, RequestExt, Response, request::RequestContext};
use serde::{Serialize, de::DeserializeOwned};
use uuid::Uuid;

use crate::error::{Error, Result};

/// The largest JSON body any route accepts (routes may set a smaller limit).
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// Header that names the caller in local development only (see [`IdentitySource`]).
pub const DEV_USER_HEADER: &str = "x-farmops-dev-user";

/// Where the caller's identity may come from.
///
/// In AWS it is the `sub` claim of API Gateway's JWT authorizer and nothing else. For local
/// development, [`DEV_USER_HEADER`] is honoured only when `FARMOPS_DEV_IDENTITY=1` is set AND
/// the process is not running inside AWS Lambda; the deployed template never sets the
/// variable, and inside Lambda it is refused regardless.
///
/// "Inside AWS Lambda" is read from variables only the real Lambda service sets:
/// `LAMBDA_TASK_ROOT` (`/var/task`, every runtime including `provided.al2023`) or
/// `AWS_EXECUTION_ENV`. Not `AWS_LAMBDA_FUNCTION_NAME`: `cargo lambda watch` sets that one
/// (with `AWS_LAMBDA_RUNTIME_API` and friends) for the functions it serves locally.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IdentitySource {
    pub allow_dev_header: bool,
}

impl IdentitySource {
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let requested = lookup("FARMOPS_DEV_IDENTITY").is_some_and(|v| v.trim() == "1");
        let in_lambda = ["LAMBDA_TASK_ROOT", "AWS_EXECUTION_ENV"]
            .iter()
            .any(|k| lookup(k).is_some_and(|v| !v.trim().is_empty()));
        if requested && in_lambda {
            tracing::warn!("FARMOPS_DEV_IDENTITY is ignored inside AWS Lambda");
        }
        IdentitySource {
            allow_dev_header: requested && !in_lambda,
        }
    }
}

/// What an HTTP function that needs only the database and the caller's identity builds once
/// at cold start (confirm-draft, discard-draft, evidence).
pub struct DbState {
    pub db: crate::db::Db,
    pub identity: IdentitySource,
}

impl DbState {
    /// The pool from `FARMOPS_DATABASE_URL` and the pool variables of [`crate::config`] (IAM
    /// authentication and TLS through RDS Proxy when configured), and the identity source.
    pub async fn from_env() -> Result<DbState> {
        let config =
            crate::config::Config::from_env().map_err(|e| Error::unexpected(e.to_string()))?;
        Ok(DbState {
            db: crate::db::connect_from_config(&config.database).await?,
            identity: IdentitySource::from_env(),
        })
    }
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: String,
}

/// The caller: the JWT `sub` claim from API Gateway's authorizer (or, in local development
/// only, the dev header). 401 when there is none.
pub fn caller(req: &Request, identity: IdentitySource) -> Result<Caller> {
    if let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref() {
        let sub = ctx
            .authorizer
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .and_then(|jwt| jwt.claims.get("sub"))
            .map(|s| s.trim())
            .filter(|s| !s.is_empty());
        if let Some(sub) = sub {
            return valid_user(sub);
        }
    }
    if identity.allow_dev_header
        && let Some(user) = header(req, DEV_USER_HEADER)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    {
        return valid_user(user);
    }
    Err(Error::Unauthenticated)
}

fn valid_user(user: &str) -> Result<Caller> {
    if user.chars().count() > 200 || user.chars().any(char::is_control) {
        return Err(Error::Unauthenticated);
    }
    Ok(Caller {
        user_id: user.to_string(),
    })
}

pub fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A header whose value must be text when it is present: `Ok(None)` when absent, 400 when
/// its value has a byte outside visible ASCII, space and tab ([`header`] reads such a value
/// as absent, which would silently drop, say, an `Idempotency-Key` with an `é` in it).
pub fn text_header<'a>(req: &'a Request, name: &str) -> Result<Option<&'a str>> {
    match req.headers().get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(Some)
            .map_err(|_| Error::BadRequest(format!("the {name} header is not ASCII text"))),
    }
}

pub fn query_param<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.query_string_parameters_ref()
        .and_then(|q| q.first(name))
}

/// The path split into its non-empty segments: `/farms/abc/chat` -> `["farms", "abc", "chat"]`.
pub fn segments(req: &Request) -> Vec<&str> {
    req.uri()
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .collect()
}

/// One route a function serves: its method and its path as `docs/openapi.yaml` writes it
/// (`/farms/{farm_id}/chat`; a `{...}` segment matches any one segment).
pub type Route = (&'static str, &'static str);

/// Whether the request's path is one of `routes` served with its method: `Ok` when it is;
/// 404 `not_found` when no route has this path; 405 `method_not_allowed` (the path's methods
/// in the `Allow` header, see [`error_response`]) when the path is served with other methods.
pub fn check_route(req: &Request, routes: &[Route]) -> Result<()> {
    let path = segments(req);
    let allow: Vec<&'static str> = routes
        .iter()
        .filter(|(_, template)| path_matches(template, &path))
        .map(|(method, _)| *method)
        .collect();
    let method = req.method().as_str();
    if allow.is_empty() {
        Err(no_route())
    } else if allow.contains(&method) {
        Ok(())
    } else {
        Err(Error::MethodNotAllowed {
            method: method.to_string(),
            allow,
        })
    }
}

fn path_matches(template: &str, path: &[&str]) -> bool {
    let template: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
    template.len() == path.len()
        && template
            .iter()
            .zip(path)
            .all(|(t, p)| t == p || (t.starts_with('{') && t.ends_with('}')))
}

/// A path segment that must be an id; 404 when it is not (an unknown id is not found).
pub fn path_id(segment: &str, what: &'static str) -> Result<Uuid> {
    Uuid::parse_str(segment).map_err(|_| Error::NotFound(what))
}

/// The body's bytes exactly as received (API Gateway's `isBase64Encoded` already undone by
/// `lambda_http`); empty when there is none.
pub fn raw_body(req: &Request) -> &[u8] {
    match req.body() {
        Body::Empty => b"",
        Body::Text(s) => s.as_bytes(),
        Body::Binary(b) => b,
        _ => b"",
    }
}

/// The body as JSON of type `T`: 413 over `limit`, 400 when it is not UTF-8 JSON, 422 when
/// it is JSON of the wrong shape (not an object, missing or unknown fields, wrong types).
pub fn json_body<T: DeserializeOwned>(req: &Request, limit: usize) -> Result<T> {
    let bytes = raw_body(req);
    if bytes.len() > limit {
        return Err(Error::PayloadTooLarge { limit });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::BadRequest("a JSON body is required".into()));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| Error::BadRequest("the body is not UTF-8".into()))?;
    // Syntax first (400), then shape (422). Every route takes a JSON object: serde would
    // otherwise read a struct from an array too (`["wrong pen"]` as `{"reason": ...}`).
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| Error::BadRequest(format!("the body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(Error::invalid("body", "must be a JSON object"));
    }
    serde_json::from_value(value).map_err(|e| Error::invalid("body", e.to_string()))
}

/// Like [`json_body`], but an empty body means `T::default()`.
pub fn optional_json_body<T: DeserializeOwned + Default>(req: &Request, limit: usize) -> Result<T> {
    match req.body() {
        Body::Empty => Ok(T::default()),
        Body::Text(s) if s.trim().is_empty() => Ok(T::default()),
        Body::Binary(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(T::default()),
        _ => json_body(req, limit),
    }
}

pub fn json_response(status: u16, body: &impl Serialize) -> Response<Body> {
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".into());
    response(status, "application/json", text)
}

pub fn response(status: u16, content_type: &str, body: String) -> Response<Body> {
    let mut res = Response::new(Body::Text(body));
    *res.status_mut() = lambda_http::http::StatusCode::from_u16(status)
        .unwrap_or(lambda_http::http::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = content_type.parse() {
        res.headers_mut().insert("content-type", v);
    }
    res
}

/// Seconds a client waits before retrying a request refused with 503 `database_unavailable`
/// (a fast restart of the cluster takes about this long).
pub const RETRY_AFTER_SECS: &str = "2";

/// The one place an [`Error`] becomes a response. Unexpected errors are logged with their
/// whole cause chain; the client sees only the code.
pub fn error_response(error: &Error) -> Response<Body> {
    if error.status() >= 500 {
        let mut chain = format!("{error}");
        let mut source = std::error::Error::source(error);
        while let Some(s) = source {
            chain.push_str(&format!(": {s}"));
            source = s.source();
        }
        tracing::error!(code = error.code(), error = %chain, "request failed");
    } else {
        tracing::info!(
            code = error.code(),
            status = error.status(),
            "request refused"
        );
    }
    let mut res = json_response(error.status(), &error.body());
    if let Error::DatabaseUnavailable(_) = error {
        res.headers_mut().insert(
            "retry-after",
            lambda_http::http::HeaderValue::from_static(RETRY_AFTER_SECS),
        );
    }
    if let Error::MethodNotAllowed { allow, .. } = error
        && let Ok(v) = allow.join(", ").parse()
    {
        res.headers_mut().insert("allow", v);
    }
    res
}

/// `Ok((status, body))` to JSON, `Err` through [`error_response`].
pub fn respond<T: Serialize>(result: Result<(u16, T)>) -> Response<Body> {
    match result {
        Ok((status, body)) => json_response(status, &body),
        Err(e) => error_response(&e),
    }
}

/// Route not served by this function.
pub fn no_route() -> Error {
    Error::NotFound("route")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(
        path: &str,
        claims: serde_json::Value,
        headers: serde_json::Value,
        body: Option<&str>,
    ) -> Request {
        let event = serde_json::json!({
            "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
            "headers": headers,
            "requestContext": {
                "routeKey": "$default", "accountId": "123456789012", "stage": "$default", "requestId": "id",
                "authorizer": {"jwt": {"claims": claims, "scopes": []}},
                "apiId": "api-id", "domainName": "id.execute-api.us-east-1.amazonaws.com", "domainPrefix": "id",
                "time": "12/Mar/2020:19:03:58 +0000", "timeEpoch": 1583348638390u64,
                "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1", "sourceIp": "IP", "userAgent": "agent"}
            },
            "body": body, "isBase64Encoded": false
        });
        lambda_http::request::from_str(&event.to_string()).expect("valid event")
    }

    #[test]
    fn caller_comes_from_the_jwt_sub_claim() {
        let req = event(
            "/farms/x/chat",
            serde_json::json!({"sub": "user-1"}),
            serde_json::json!({}),
            None,
        );
        assert_eq!(
            caller(&req, IdentitySource::default()).unwrap().user_id,
            "user-1"
        );
        let req = event(
            "/farms/x/chat",
            serde_json::json!({"email": "a@b"}),
            serde_json::json!({}),
            None,
        );
        assert!(matches!(
            caller(&req, IdentitySource::default()),
            Err(Error::Unauthenticated)
        ));
    }

    #[test]
    fn dev_header_only_when_allowed_and_outside_lambda() {
        let req = event(
            "/x",
            serde_json::json!({}),
            serde_json::json!({DEV_USER_HEADER: "dev-owner"}),
            None,
        );
        assert!(
            caller(&req, IdentitySource::default()).is_err(),
            "off by default"
        );
        let dev =
            IdentitySource::from_lookup(|k| (k == "FARMOPS_DEV_IDENTITY").then(|| "1".to_string()));
        assert_eq!(caller(&req, dev).unwrap().user_id, "dev-owner");
        // The environment `cargo lambda watch` gives a function (observed with cargo-lambda
        // 1.9): the AWS_LAMBDA_* runtime variables, but no LAMBDA_TASK_ROOT.
        let cargo_lambda = |k: &str| match k {
            "FARMOPS_DEV_IDENTITY" => Some("1".to_string()),
            "AWS_LAMBDA_FUNCTION_NAME" => Some("chat".into()),
            "AWS_LAMBDA_RUNTIME_API" => Some("http://127.0.0.1:9000/.rt/chat".into()),
            "AWS_LAMBDA_FUNCTION_VERSION" => Some("1".into()),
            _ => None,
        };
        let watch = IdentitySource::from_lookup(cargo_lambda);
        assert_eq!(caller(&req, watch).unwrap().user_id, "dev-owner");
        // Real Lambda: LAMBDA_TASK_ROOT (every runtime) or AWS_EXECUTION_ENV (managed ones).
        for (var, value) in [
            ("LAMBDA_TASK_ROOT", "/var/task"),
            ("AWS_EXECUTION_ENV", "AWS_Lambda_rapid"),
        ] {
            let in_lambda = IdentitySource::from_lookup(|k| {
                if k == var {
                    Some(value.into())
                } else {
                    cargo_lambda(k)
                }
            });
            assert!(!in_lambda.allow_dev_header, "{var}");
            assert!(
                caller(&req, in_lambda).is_err(),
                "refused inside Lambda ({var})"
            );
        }
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Msg {
        #[allow(dead_code)]
        message: String,
    }

    #[test]
    fn body_errors_have_the_right_status() {
        let with = |b: &str| {
            event(
                "/x",
                serde_json::json!({"sub": "u"}),
                serde_json::json!({}),
                Some(b),
            )
        };
        assert!(json_body::<Msg>(&with(r#"{"message":"hi"}"#), 100).is_ok());
        let status = |b: &str, limit| json_body::<Msg>(&with(b), limit).unwrap_err().status();
        assert_eq!(status("{not json", 100), 400);
        assert_eq!(status("[1, 2", 100), 400, "syntax before shape");
        assert_eq!(status(r#"["hi"]"#, 100), 422, "an array is not an object");
        assert_eq!(status(r#""hi""#, 100), 422);
        assert_eq!(status("", 100), 400);
        assert_eq!(status(r#"{}"#, 100), 422);
        assert_eq!(status(r#"{"message":"hi","farm_id":"x"}"#, 100), 422);
        assert_eq!(status(r#"{"message": 5}"#, 100), 422);
        assert_eq!(
            status(&format!(r#"{{"message":"{}"}}"#, "a".repeat(200)), 100),
            413
        );
    }

    #[test]
    fn routes_and_ids() {
        let req = event(
            "/farms/abc/drafts/def/confirm",
            serde_json::json!({}),
            serde_json::json!({}),
            None,
        );
        assert_eq!(segments(&req), ["farms", "abc", "drafts", "def", "confirm"]);
        assert_eq!(path_id("not-a-uuid", "farm").unwrap_err().status(), 404);
        let res = error_response(&Error::InsufficientCredits {
            needed: 5,
            balance: 1,
        });
        assert_eq!(res.status(), 402);
    }

    #[test]
    fn an_unavailable_database_is_a_503_with_retry_after() {
        let res = error_response(&Error::DatabaseUnavailable("connection closed".into()));
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()["retry-after"], RETRY_AFTER_SECS);
        let res = error_response(&Error::ModelUnavailable("throttled".into()));
        assert!(!res.headers().contains_key("retry-after"));
    }

    #[test]
    fn a_served_path_with_another_method_is_a_405_with_allow() {
        const ROUTES: &[Route] = &[
            ("PUT", "/farms/{farm_id}/members/{user_id}"),
            ("DELETE", "/farms/{farm_id}/members/{user_id}"),
            ("GET", "/farms/{farm_id}/members"),
        ];
        let req = |method: &str, path: &str| {
            let mut req = event(path, serde_json::json!({}), serde_json::json!({}), None);
            *req.method_mut() = method.parse().unwrap();
            req
        };
        assert!(check_route(&req("PUT", "/farms/a/members/b"), ROUTES).is_ok());
        assert!(check_route(&req("GET", "/farms/a/members/"), ROUTES).is_ok());
        let err = check_route(&req("POST", "/farms/a/members/b"), ROUTES).unwrap_err();
        assert_eq!((err.status(), err.code()), (405, "method_not_allowed"));
        let res = error_response(&err);
        assert_eq!(res.status(), 405);
        assert_eq!(res.headers()["allow"], "PUT, DELETE");
        let err = check_route(&req("DELETE", "/farms/a/members"), ROUTES).unwrap_err();
        assert_eq!(error_response(&err).headers()["allow"], "GET");
        for path in ["/farms/a/members/b/c", "/farms/a", "/farms/a/drafts", "/"] {
            let err = check_route(&req("GET", path), ROUTES).unwrap_err();
            assert_eq!(err.status(), 404, "{path}");
            assert!(!error_response(&err).headers().contains_key("allow"));
        }
    }
}
