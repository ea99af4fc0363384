//! A human decision ([`farmops::decisions::decide`]) as the HTTP response confirm-draft and
//! discard-draft answer: the domain decides, this maps the outcome.

use farmops::{
    decisions::{Decided, REPLAYED_HEADER},
    error::Result,
};
use lambda_http::{Body, Response};

/// The HTTP response for a decision (errors through [`crate::error_response`]); a response
/// replayed for a repeated `Idempotency-Key` carries [`REPLAYED_HEADER`].
pub fn response(result: Result<Decided>) -> Response<Body> {
    match result {
        Ok(decided) => {
            let mut res = crate::json_response(decided.status, &decided.body);
            if decided.replayed {
                res.headers_mut()
                    .insert(REPLAYED_HEADER, "true".parse().expect("static header"));
            }
            res
        }
        Err(e) => crate::error_response(&e),
    }
}

#[cfg(test)]
mod tests {
    use farmops::error::Error;
    use serde_json::json;

    use super::*;

    #[test]
    fn replayed_responses_say_so() {
        let res = response(Ok(Decided {
            status: 200,
            body: json!({"draft": {}}),
            replayed: true,
        }));
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()[REPLAYED_HEADER], "true");
        let res = response(Ok(Decided {
            status: 200,
            body: json!({}),
            replayed: false,
        }));
        assert!(res.headers().get(REPLAYED_HEADER).is_none());
        let res = response(Err(Error::Conflict {
            what: "draft",
            status: "confirmed".into(),
        }));
        assert_eq!(res.status(), 409);
    }
}
