//! The response side: JSON responses and the ONE mapping from [`Error`] to a response.

use lambda_http::{Body, Response};
use serde::Serialize;

use farmops::error::{Error, Result};

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
