//! billing: `POST /payments/paystack`, Paystack's webhook ([`farmops::payments`]). Not behind
//! the JWT authorizer: Paystack calls it, and the signature of the raw body with the secret key
//! is the authentication. This crate reads the body exactly as received (API Gateway's base64
//! already undone by `lambda_http`) and the signature header; the shared crate verifies, and
//! the database's doors (as `farmops_billing`) decide and record.
//!
//! Answers: 200 with the event's verdict for every delivery whose signature is valid, whatever
//! the verdict (so Paystack stops retrying what will never be granted); 401
//! `invalid_signature` (nothing written) otherwise; 503 `database_unavailable` with
//! `Retry-After` when the database is unreachable, restarting or drops the connection, and 500
//! when it fails otherwise (nothing granted either way; Paystack then retries).

use chrono::{DateTime, Utc};
use farmops::{
    config::{BillingConfig, PaystackSecretSource, Secret},
    db::Db,
    payments::{self, paystack},
};
use farmops_http as http;
use lambda_http::{Body, Request, Response};

/// The routes this function serves (see [`http::check_route`]).
pub const ROUTES: &[http::Route] = &[("POST", "/payments/paystack")];

/// Built once at cold start.
pub struct State {
    /// Connected as `farmops_billing`.
    pub db: Db,
    /// The Paystack secret key the signatures are checked with.
    pub secret: Secret,
}

impl State {
    /// From the environment ([`farmops::config`]: `FARMOPS_BILLING_DATABASE_URL`, the
    /// `FARMOPS_DB_*` settings, and `FARMOPS_PAYSTACK_SECRET_KEY` or
    /// `FARMOPS_PAYSTACK_SECRET_ARN`, the key then read from Secrets Manager).
    pub async fn from_env() -> farmops::Result<State> {
        State::from_lookup(|k| std::env::var(k).ok()).await
    }

    pub async fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> farmops::Result<State> {
        let config = BillingConfig::from_lookup(lookup)
            .map_err(|e| farmops::Error::unexpected(e.to_string()))?;
        let secret = match config.paystack_secret {
            PaystackSecretSource::Key(key) => key,
            PaystackSecretSource::SecretsManager { arn } => {
                farmops::aws::paystack_secret(&arn).await?
            }
        };
        Ok(State {
            db: farmops::db::connect_from_config(&config.database).await?,
            secret,
        })
    }
}

pub async fn handle(state: &State, req: Request) -> Response<Body> {
    handle_at(state, req, Utc::now()).await
}

/// [`handle`] at a given time of receipt (the timestamped signature's window).
pub async fn handle_at(state: &State, req: Request, now: DateTime<Utc>) -> Response<Body> {
    match route(state, &req, now).await {
        Ok(res) => res,
        Err(e) => http::error_response(&e),
    }
}

async fn route(
    state: &State,
    req: &Request,
    now: DateTime<Utc>,
) -> farmops::Result<Response<Body>> {
    http::check_route(req, ROUTES)?;
    // a header value that is not text is no signature (401), not a bad request
    let signature = req
        .headers()
        .get(paystack::SIGNATURE_HEADER)
        .map(|v| v.to_str().unwrap_or(""));
    let receipt = payments::record_paystack_event(
        &state.db,
        http::raw_body(req),
        signature,
        &state.secret,
        now,
    )
    .await?;
    Ok(http::json_response(200, &receipt))
}
