//! Test support for the handlers (cargo feature `testing`): the API Gateway events Lambda hands
//! the HTTP functions, as AWS sends them (`shared/fixtures/`), a response's JSON, the check of
//! the 503 a database fault must answer, and [`openapi`], `docs/openapi.yaml` as a conformance
//! check. The databases, stubs and faults themselves are the domain crate's
//! (`farmops::testing`).

use lambda_http::{Body, Response};

pub mod openapi;

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
        "../../shared/fixtures/apigw-v2-request-jwt-authorizer.json"
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

/// When `res` is a 503: the error is `database_unavailable` with a `Retry-After` of at least
/// one second. Answers the status.
pub fn check_unavailable(res: &Response<Body>) -> u16 {
    let status = res.status().as_u16();
    if status == 503 {
        let body = body_json(res);
        assert_eq!(body["error"]["code"], "database_unavailable", "{body}");
        let retry = res.headers().get("retry-after").expect("Retry-After");
        let secs: u64 = retry
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .expect("Retry-After in seconds");
        assert!(secs >= 1, "Retry-After: {secs}");
    }
    status
}

/// Response body as JSON.
pub fn body_json(response: &Response<Body>) -> serde_json::Value {
    match response.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap_or(serde_json::Value::String(t.clone())),
        Body::Binary(b) => serde_json::from_slice(b).unwrap_or(serde_json::Value::Null),
        _ => serde_json::Value::Null,
    }
}
