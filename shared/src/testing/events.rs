//! The events Lambda hands the functions, as AWS sends them (the fixtures under
//! `shared/fixtures/`), and the JSON of a handler's response.

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
        "../../fixtures/apigw-v2-request-jwt-authorizer.json"
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
    serde_json::from_str(include_str!(
        "../../fixtures/eventbridge-scheduled-event.json"
    ))
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
