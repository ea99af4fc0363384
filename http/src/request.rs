//! The request side: who is calling, which route, the headers, query and JSON body.

use lambda_http::{Body, Request, RequestExt, request::RequestContext};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use farmops::error::{Error, Result};

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
/// "Inside AWS Lambda" is [`farmops::aws::LambdaHost::is_aws`]: the real service, not
/// `cargo lambda watch` (which serves the functions locally with the header on).
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
        let in_lambda = farmops::aws::LambdaHost::from_lookup(lookup).is_aws();
        if requested && in_lambda {
            tracing::warn!("FARMOPS_DEV_IDENTITY is ignored inside AWS Lambda");
        }
        IdentitySource {
            allow_dev_header: requested && !in_lambda,
        }
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
/// in the `Allow` header, see [`error_response`](super::error_response)) when the path is
/// served with other methods.
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

/// Route not served by this function.
pub fn no_route() -> Error {
    Error::NotFound("route")
}
