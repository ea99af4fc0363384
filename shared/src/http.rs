//! HTTP helpers every handler uses: who is calling, which route, the JSON body within its
//! limit, and the ONE mapping from [`Error`] to a response.
//!
//! Routes are matched on the request path itself (not on API Gateway's `pathParameters`), so
//! the same handler serves API Gateway and `cargo lambda watch` alike. Each function declares
//! its routes once as a table of [`Route`]s (the OpenAPI document's methods and paths; its
//! tests check the two agree) and calls [`check_route`] first: a path it does not serve is a
//! 404, a path it serves with another method a 405 with an `Allow` header.

mod request;
mod response;
#[cfg(test)]
mod tests;

pub use request::{
    Caller, DEFAULT_BODY_LIMIT, DEV_USER_HEADER, IdentitySource, Route, caller, check_route,
    header, json_body, no_route, optional_json_body, path_id, query_param, raw_body, segments,
    text_header,
};
pub use response::{RETRY_AFTER_SECS, error_response, json_response, respond, response};

use crate::error::{Error, Result};

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
