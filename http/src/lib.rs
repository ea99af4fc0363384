//! FarmOps over HTTP and the Lambda runtime: who is calling, which route, the JSON body within
//! its limit, the ONE mapping from [`Error`] to a response ([`error_response`]), a decision's
//! response ([`decisions::response`]), and how a job reports an [`Error`] to the runtime
//! ([`diagnostic`]). Every Lambda function links it; the domain crate (`farmops`) does not.
//!
//! Why a crate and not a cargo feature of `farmops`: the domain decides, this crate maps the
//! decision to HTTP. As its own crate the boundary is the dependency graph itself (`farmops`
//! cannot reach `lambda_http` by accident, whatever features a build turns on; `cargo tree -p
//! farmops-shared -e normal` lists no `lambda_http` or `lambda_runtime`), where a feature
//! would be on in every function's build of the shared crate and so in every test of it.
//!
//! Routes are matched on the request path itself (not on API Gateway's `pathParameters`), so
//! the same handler serves API Gateway and `cargo lambda watch` alike. Each function declares
//! its routes once as a table of [`Route`]s (the OpenAPI document's methods and paths; its
//! tests check the two agree) and calls [`check_route`] first: a path it does not serve is a
//! 404, a path it serves with another method a 405 with an `Allow` header.
//!
//! The cargo feature `testing` adds [`testing`]: the API Gateway events the handlers' tests
//! send, the JSON of a response, and `docs/openapi.yaml` as a conformance check.

pub mod decisions;
mod request;
mod response;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(test)]
mod tests;

pub use request::{
    Caller, DEFAULT_BODY_LIMIT, DEV_USER_HEADER, IdentitySource, Route, caller, check_route,
    header, json_body, no_route, optional_json_body, path_id, query_param, raw_body, segments,
    text_header,
};
pub use response::{RETRY_AFTER_SECS, error_response, json_response, respond, response};

pub use lambda_http::lambda_runtime::Diagnostic;

use farmops::error::{Error, Result};

/// What an HTTP function that needs only the database and the caller's identity builds once
/// at cold start (confirm-draft, discard-draft, evidence, farm).
pub struct DbState {
    pub db: farmops::db::Db,
    pub identity: IdentitySource,
}

impl DbState {
    /// The pool from `FARMOPS_DATABASE_URL` and the pool variables of [`farmops::config`] (IAM
    /// authentication and TLS through RDS Proxy when configured), and the identity source.
    pub async fn from_env() -> Result<DbState> {
        let config =
            farmops::config::Config::from_env().map_err(|e| Error::unexpected(e.to_string()))?;
        Ok(DbState {
            db: farmops::db::connect_from_config(&config.database).await?,
            identity: IdentitySource::from_env(),
        })
    }
}

/// How a function that is not behind HTTP (the scheduled jobs, migrate, reembed's events)
/// reports a failure to the Lambda runtime: the error's code is the `errorType` CloudWatch
/// and the invoker see (`insufficient_credits`, `model_unavailable`, ...), its message the
/// `errorMessage`. A function (not `From`: neither type is this crate's):
/// `.map_err(farmops_http::diagnostic)`.
pub fn diagnostic(e: Error) -> Diagnostic {
    Diagnostic {
        error_type: e.code().to_string(),
        error_message: e.to_string(),
    }
}
