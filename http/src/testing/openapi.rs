//! The OpenAPI document (`docs/openapi.yaml`) as a conformance check for handler responses.

use serde_json::{Value, json};

/// `docs/openapi.yaml` as JSON.
pub fn document() -> Value {
    serde_yaml::from_str(include_str!("../../../docs/openapi.yaml"))
        .expect("docs/openapi.yaml is YAML")
}

fn resolve<'a>(doc: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(r) => doc
            .pointer(r.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("unresolved $ref {r}")),
        None => node,
    }
}

/// Why `body` (answered with `status` to `method path`, the path as the document writes
/// it, e.g. `/farms/{farm_id}/chat`) does not conform to the document; empty when it does.
/// An undocumented route or status is a failure too.
pub fn conformance_errors(method: &str, path: &str, status: u16, body: &Value) -> Vec<String> {
    conformance_errors_as(method, path, status, "application/json", body)
}

/// [`conformance_errors`] for a response of media type `media` (`text/csv`, ...): a text
/// body is checked as a JSON string against the schema the document gives that type.
pub fn conformance_errors_as(
    method: &str,
    path: &str,
    status: u16,
    media: &str,
    body: &Value,
) -> Vec<String> {
    let doc = document();
    let method = method.to_lowercase();
    let Some(operation) = doc["paths"][path].get(&method) else {
        return vec![format!("{method} {path} is not in the document")];
    };
    let Some(response) = operation["responses"].get(status.to_string()) else {
        return vec![format!(
            "{method} {path}: status {status} is not documented"
        )];
    };
    let response = resolve(&doc, response);
    let pointer = format!(
        "/content/{}/schema",
        media.replace('~', "~0").replace('/', "~1")
    );
    let Some(schema) = response.pointer(&pointer) else {
        return vec![format!("{method} {path} {status}: no {media} schema")];
    };
    // The operation's schema as the root, with the document's components beside it so
    // `#/components/schemas/...` references resolve.
    let mut root = json!({ "$schema": "https://json-schema.org/draft/2020-12/schema" });
    root["components"] = doc["components"].clone();
    root["allOf"] = json!([schema]);
    let validator = jsonschema::validator_for(&root)
        .unwrap_or_else(|e| panic!("{method} {path} {status}: invalid schema: {e}"));
    validator
        .iter_errors(body)
        .map(|e| format!("{method} {path} {status}: {e} at {}", e.instance_path))
        .collect()
}

/// The document's path template that `path` (a real request path) matches, e.g.
/// `/farms/<uuid>/chat` -> `/farms/{farm_id}/chat`; `None` for an undocumented path.
pub fn route_template(method: &str, path: &str) -> Option<String> {
    let doc = document();
    let method = method.to_lowercase();
    let want: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    doc["paths"]
        .as_object()?
        .iter()
        .find_map(|(template, item)| {
            let have: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
            let matches = have.len() == want.len()
                && have
                    .iter()
                    .zip(&want)
                    .all(|(h, w)| h == w || (h.starts_with('{') && h.ends_with('}')));
            (matches && item.get(&method).is_some()).then(|| template.clone())
        })
}

/// [`assert_conforms`] for a real request path. A path the document does not have (a
/// test of an unknown route) must still answer the document's error shape.
pub fn assert_conforms_path(
    method: &str,
    path: &str,
    response: &lambda_http::Response<lambda_http::Body>,
) {
    match route_template(method, path) {
        Some(template) => assert_conforms(method, &template, response),
        None => {
            let doc = document();
            let mut root = json!({ "$ref": "#/components/schemas/Error" });
            root["components"] = doc["components"].clone();
            let body = super::body_json(response);
            let validator = jsonschema::validator_for(&root).expect("Error schema");
            assert!(
                response.status().as_u16() >= 400 && validator.is_valid(&body),
                "{method} {path} is not in docs/openapi.yaml and answered {} {body}",
                response.status()
            );
        }
    }
}

/// The routes the document gives `function` (`x-farmops-function`): `(METHOD, path)`,
/// sorted.
pub fn routes_of(function: &str) -> Vec<(String, String)> {
    let doc = document();
    let mut routes: Vec<(String, String)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .into_iter()
                .flatten()
                .filter(|(_, op)| op["x-farmops-function"] == function)
                .map(|(method, _)| (method.to_uppercase(), path.clone()))
        })
        .collect();
    routes.sort();
    routes
}

/// Panics unless a function's route table (`farmops_http::Route`s) is exactly the routes
/// the document gives it.
pub fn assert_routes_are_documented(function: &str, routes: &[crate::Route]) {
    let mut ours: Vec<(String, String)> = routes
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    ours.sort();
    assert_eq!(
        ours,
        routes_of(function),
        "{function}: ROUTES vs docs/openapi.yaml"
    );
}

/// A request a function must answer with 405: a path of the document's for `function`
/// (`{...}` segments filled with an id) with a method the document does not give it.
#[derive(Debug)]
pub struct UnsupportedMethod {
    pub method: &'static str,
    pub path: String,
    /// The path's methods, the `Allow` header's content.
    pub allow: Vec<String>,
}

/// Every [`UnsupportedMethod`] of `function`'s paths, over the methods OpenAPI knows.
pub fn unsupported_methods(function: &str) -> Vec<UnsupportedMethod> {
    const METHODS: [&str; 8] = [
        "GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE",
    ];
    let routes = routes_of(function);
    let paths: std::collections::BTreeSet<&String> = routes.iter().map(|(_, p)| p).collect();
    let id = uuid::Uuid::new_v4().to_string();
    paths
        .into_iter()
        .flat_map(|template| {
            let allow: Vec<String> = routes
                .iter()
                .filter(|(_, p)| p == template)
                .map(|(m, _)| m.clone())
                .collect();
            let path = template
                .split('/')
                .map(|s| if s.starts_with('{') { id.as_str() } else { s })
                .collect::<Vec<_>>()
                .join("/");
            METHODS
                .into_iter()
                .filter(|m| !allow.iter().any(|a| a == m))
                .map(|method| UnsupportedMethod {
                    method,
                    path: path.clone(),
                    allow: allow.clone(),
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Panics unless `response` is the 405 the document describes for `case`
/// (`components.responses.MethodNotAllowed`): the status, an `Allow` header naming
/// exactly the path's methods, and the error body.
pub fn assert_method_not_allowed(
    case: &UnsupportedMethod,
    response: &lambda_http::Response<lambda_http::Body>,
) {
    let body = super::body_json(response);
    assert_eq!(
        response.status().as_u16(),
        405,
        "{} {}: {body}",
        case.method,
        case.path
    );
    let mut allow: Vec<String> = response
        .headers()
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(',')
        .map(|m| m.trim().to_string())
        .collect();
    allow.sort();
    let mut want = case.allow.clone();
    want.sort();
    assert_eq!(allow, want, "{} {}: Allow", case.method, case.path);
    let doc = document();
    let schema = doc
        .pointer("/components/responses/MethodNotAllowed/content/application~1json/schema")
        .expect("components.responses.MethodNotAllowed");
    let mut root = json!({ "allOf": [schema] });
    root["components"] = doc["components"].clone();
    let validator = jsonschema::validator_for(&root).expect("MethodNotAllowed schema");
    assert!(
        validator.is_valid(&body),
        "{} {}: not the document's 405 body: {body}",
        case.method,
        case.path
    );
}

/// Whether the document's schema for query or header parameter `name` of `method path`
/// allows `value` (formats such as `date` and `date-time` asserted).
pub fn parameter_allows(method: &str, path: &str, name: &str, value: &str) -> bool {
    let doc = document();
    let operation = &doc["paths"][path][method.to_lowercase()];
    let parameter = operation["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .map(|p| resolve(&doc, p))
        .find(|p| {
            p["name"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
        .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"));
    let mut root = json!({ "allOf": [parameter["schema"]] });
    root["components"] = doc["components"].clone();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&root)
        .expect("parameter schema")
        .is_valid(&json!(value))
}

/// Panics unless the handler's response conforms to the document: its status, its
/// content type (documented for that status) and its body (JSON, or text as a string).
pub fn assert_conforms(
    method: &str,
    path: &str,
    response: &lambda_http::Response<lambda_http::Body>,
) {
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let body = if media == "application/json" {
        super::body_json(response)
    } else {
        match response.body() {
            lambda_http::Body::Text(t) => Value::String(t.clone()),
            lambda_http::Body::Binary(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
            _ => Value::Null,
        }
    };
    let errors = conformance_errors_as(method, path, response.status().as_u16(), &media, &body);
    assert!(
        errors.is_empty(),
        "response does not conform to docs/openapi.yaml:\n{}\nbody: {body}",
        errors.join("\n")
    );
}
