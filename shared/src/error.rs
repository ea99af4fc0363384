//! The one error type at the shared crate's boundary, and its HTTP meaning.
//!
//! Every handler maps a failure to a response through [`Error::status`], [`Error::code`] and
//! [`Error::body`], so the same failure answers the same way from every function. Unexpected
//! errors keep their cause chain for the logs; the client sees only a generic message.

use serde::Serialize;

/// One field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed request: not JSON, wrong shape, bad id. 400.
    #[error("{0}")]
    BadRequest(String),
    /// No caller identity. 401.
    #[error("no caller identity")]
    Unauthenticated,
    /// A webhook whose signature is missing or wrong (the provider signs; nothing is written).
    /// 401.
    #[error("{0}")]
    InvalidSignature(&'static str),
    /// The farm cannot pay for the run. 402.
    #[error("insufficient credits: {needed} needed, {balance} available")]
    InsufficientCredits { needed: i64, balance: i64 },
    /// The member's budget (a daily or monthly cap set by an owner or a manager) cannot take
    /// the hold: `spent` (charged) plus `held` (open runs) in the window, plus the hold, would
    /// pass `cap`. The window resets at `resets_at`. 402.
    #[error(
        "the member's {window} budget of {cap} credits would be passed: {spent} spent and {held} held in the window, which resets at {resets_at}"
    )]
    MemberBudgetExceeded {
        /// `daily` or `monthly`.
        window: String,
        cap: i64,
        spent: i64,
        held: i64,
        /// Credits the refused hold asked for.
        needed: i64,
        resets_at: chrono::DateTime<chrono::Utc>,
    },
    /// The caller's role is too low. 403.
    #[error("{0}")]
    Forbidden(String),
    /// Unknown, or belongs to a farm the caller is not a member of. 404.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The path is served, but not with this method. 405, with an `Allow` header listing the
    /// methods it is served with (`farmops_http::error_response`).
    #[error("{method} is not allowed on this path; allowed: {}", .allow.join(", "))]
    MethodNotAllowed {
        method: String,
        allow: Vec<&'static str>,
    },
    /// No representation the client accepts (`Accept` header). 406.
    #[error("none of the accepted types is available; offered: {0}")]
    NotAcceptable(&'static str),
    /// The thing is no longer in a state that allows the request. 409.
    #[error("{what} is already {status}")]
    Conflict { what: &'static str, status: String },
    /// The body is over the limit. 413.
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// Well-formed, but the content is invalid. 422.
    #[error("invalid payload: {}", summarize(.0))]
    Invalid(Vec<FieldError>),
    /// The model returned an error or garbage. 502 (credits refunded).
    #[error("model failed: {0}")]
    ModelFailed(String),
    /// The model is throttled or timed out. 503 (credits refunded).
    #[error("model unavailable: {0}")]
    ModelUnavailable(String),
    /// The database cannot be reached, is restarting, or dropped the connection mid-request
    /// (connection refused or closed, SQLSTATE class 08, admin shutdown 57P01/57P02/57P03,
    /// the pool timing out or failing to connect): nothing was saved, or the transaction's
    /// fate is unknown to this process but whole (PostgreSQL commits all or nothing). 503
    /// with `Retry-After` (`farmops_http::error_response`); the pool discards the broken
    /// connection, so the next request after the database is back succeeds.
    #[error("database unavailable: {0}")]
    DatabaseUnavailable(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// Everything else. 500; logged with its cause, never shown.
    #[error("unexpected error: {0}")]
    Unexpected(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

fn summarize(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    pub fn unexpected(message: impl Into<String>) -> Self {
        Error::Unexpected(message.into().into())
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid(vec![FieldError::new(field, message)])
    }

    pub fn status(&self) -> u16 {
        match self {
            Error::BadRequest(_) => 400,
            Error::Unauthenticated => 401,
            Error::InvalidSignature(_) => 401,
            Error::InsufficientCredits { .. } => 402,
            Error::MemberBudgetExceeded { .. } => 402,
            Error::Forbidden(_) => 403,
            Error::NotFound(_) => 404,
            Error::MethodNotAllowed { .. } => 405,
            Error::NotAcceptable(_) => 406,
            Error::Conflict { .. } => 409,
            Error::PayloadTooLarge { .. } => 413,
            Error::Invalid(_) => 422,
            Error::ModelFailed(_) => 502,
            Error::ModelUnavailable(_) => 503,
            Error::DatabaseUnavailable(_) => 503,
            Error::Unexpected(_) => 500,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Error::BadRequest(_) => "bad_request",
            Error::Unauthenticated => "unauthenticated",
            Error::InvalidSignature(_) => "invalid_signature",
            Error::InsufficientCredits { .. } => "insufficient_credits",
            Error::MemberBudgetExceeded { .. } => "member_budget_exceeded",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound(_) => "not_found",
            Error::MethodNotAllowed { .. } => "method_not_allowed",
            Error::NotAcceptable(_) => "not_acceptable",
            Error::Conflict { .. } => "conflict",
            Error::PayloadTooLarge { .. } => "payload_too_large",
            Error::Invalid(_) => "invalid_payload",
            Error::ModelFailed(_) => "model_failed",
            Error::ModelUnavailable(_) => "model_unavailable",
            Error::DatabaseUnavailable(_) => "database_unavailable",
            Error::Unexpected(_) => "internal",
        }
    }

    /// `{"error": {"code", "message", ...details}}`, safe to send to the client.
    pub fn body(&self) -> serde_json::Value {
        let message = match self {
            Error::Unexpected(_) => "internal error".to_string(),
            Error::DatabaseUnavailable(_) => {
                "the database is unavailable; retry shortly".to_string()
            }
            other => other.to_string(),
        };
        let mut error = serde_json::json!({ "code": self.code(), "message": message });
        match self {
            Error::Invalid(fields) => error["fields"] = serde_json::json!(fields),
            Error::Conflict { status, .. } => error["status"] = serde_json::json!(status),
            Error::InsufficientCredits { needed, balance } => {
                error["needed"] = serde_json::json!(needed);
                error["balance"] = serde_json::json!(balance);
            }
            Error::MemberBudgetExceeded {
                window,
                cap,
                spent,
                held,
                needed,
                resets_at,
            } => {
                error["window"] = serde_json::json!(window);
                error["cap"] = serde_json::json!(cap);
                error["spent"] = serde_json::json!(spent);
                error["held"] = serde_json::json!(held);
                error["needed"] = serde_json::json!(needed);
                error["resets_at"] = serde_json::json!(resets_at);
            }
            _ => {}
        }
        serde_json::json!({ "error": error })
    }
}

/// A driver error as the crate's: connection-level failures (the database unreachable,
/// restarting, or gone mid-request) are [`Error::DatabaseUnavailable`], the rest (a refusal by
/// the schema, a statement timeout, a bug) [`Error::Unexpected`].
impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        if is_connection_failure(&e) {
            Error::DatabaseUnavailable(Box::new(e))
        } else {
            Error::Unexpected(Box::new(e))
        }
    }
}

/// SQLSTATEs that mean the connection, not the statement, failed: class 08 (connection
/// exception) and the shutdowns of class 57 (57P01 admin shutdown: `pg_terminate_backend` or
/// a fast shutdown; 57P02 crash shutdown; 57P03 cannot connect now: starting up or shutting
/// down). 57014 (a statement timeout or cancel) is not one: the connection is fine.
pub fn is_connection_sqlstate(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
}

/// Whether a driver error is a connection-level failure: the connection closed, an I/O error
/// on its socket, or a connection SQLSTATE ([`is_connection_sqlstate`]).
pub fn is_connection_failure(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(code) = e.code() {
        return is_connection_sqlstate(code.code());
    }
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if cause.is::<std::io::Error>() {
            return true;
        }
        source = cause.source();
    }
    false
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_its_status_and_code() {
        let cases: Vec<(Error, u16, &str)> = vec![
            (Error::BadRequest("x".into()), 400, "bad_request"),
            (Error::Unauthenticated, 401, "unauthenticated"),
            (
                Error::InvalidSignature("the signature does not match the body"),
                401,
                "invalid_signature",
            ),
            (
                Error::InsufficientCredits {
                    needed: 3,
                    balance: 1,
                },
                402,
                "insufficient_credits",
            ),
            (
                Error::MemberBudgetExceeded {
                    window: "daily".into(),
                    cap: 10,
                    spent: 8,
                    held: 1,
                    needed: 3,
                    resets_at: chrono::DateTime::UNIX_EPOCH,
                },
                402,
                "member_budget_exceeded",
            ),
            (Error::Forbidden("x".into()), 403, "forbidden"),
            (Error::NotFound("farm"), 404, "not_found"),
            (
                Error::MethodNotAllowed {
                    method: "GET".into(),
                    allow: vec!["POST"],
                },
                405,
                "method_not_allowed",
            ),
            (
                Error::NotAcceptable("application/json"),
                406,
                "not_acceptable",
            ),
            (
                Error::Conflict {
                    what: "draft",
                    status: "confirmed".into(),
                },
                409,
                "conflict",
            ),
            (
                Error::PayloadTooLarge { limit: 10 },
                413,
                "payload_too_large",
            ),
            (
                Error::invalid("count", "must be positive"),
                422,
                "invalid_payload",
            ),
            (Error::ModelFailed("x".into()), 502, "model_failed"),
            (
                Error::ModelUnavailable("x".into()),
                503,
                "model_unavailable",
            ),
            (
                Error::DatabaseUnavailable("connection closed".into()),
                503,
                "database_unavailable",
            ),
            (Error::unexpected("boom"), 500, "internal"),
        ];
        for (error, status, code) in cases {
            assert_eq!(error.status(), status, "{error:?}");
            assert_eq!(error.code(), code, "{error:?}");
            assert_eq!(error.body()["error"]["code"], code);
        }
    }

    #[test]
    fn connection_sqlstates_are_the_connection_classes_only() {
        for code in [
            "08000", "08003", "08006", "08P01", "57P01", "57P02", "57P03",
        ] {
            assert!(is_connection_sqlstate(code), "{code}");
        }
        for code in ["57014", "23505", "40001", "42501", "FO404", "XX000"] {
            assert!(!is_connection_sqlstate(code), "{code}");
        }
        let body = Error::DatabaseUnavailable("password=hunter2".into()).body();
        assert!(!body.to_string().contains("hunter2"), "{body}");
    }

    #[test]
    fn unexpected_errors_do_not_leak_their_cause() {
        let body = Error::unexpected("password=hunter2 at db-host").body();
        assert_eq!(body["error"]["message"], "internal error");
        assert!(!body.to_string().contains("hunter2"));
    }

    #[test]
    fn details_travel_with_the_error() {
        let body = Error::Conflict {
            what: "draft",
            status: "discarded".into(),
        }
        .body();
        assert_eq!(body["error"]["status"], "discarded");
        let body = Error::MemberBudgetExceeded {
            window: "monthly".into(),
            cap: 100,
            spent: 90,
            held: 6,
            needed: 5,
            resets_at: chrono::DateTime::from_timestamp(1_767_222_000, 0).unwrap(),
        }
        .body();
        assert_eq!(body["error"]["code"], "member_budget_exceeded");
        assert_eq!(
            (
                &body["error"]["window"],
                &body["error"]["cap"],
                &body["error"]["spent"],
                &body["error"]["held"],
                &body["error"]["needed"],
                &body["error"]["resets_at"]
            ),
            (
                &serde_json::json!("monthly"),
                &serde_json::json!(100),
                &serde_json::json!(90),
                &serde_json::json!(6),
                &serde_json::json!(5),
                &serde_json::json!("2025-12-31T23:00:00Z")
            )
        );
        let body = Error::invalid("amount_kobo", "must be a whole number").body();
        assert_eq!(body["error"]["fields"][0]["field"], "amount_kobo");
    }
}
