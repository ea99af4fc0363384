use lambda_http::Request;

use super::*;
use farmops::error::Error;

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

#[test]
fn a_job_reports_the_errors_code_as_its_type() {
    let d = crate::diagnostic(Error::InsufficientCredits {
        needed: 3,
        balance: 1,
    });
    assert_eq!(d.error_type, "insufficient_credits");
    assert!(d.error_message.contains('3'), "{}", d.error_message);
}
