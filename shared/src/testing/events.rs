//! The events Lambda hands the scheduled functions, as AWS sends them (the fixtures under
//! `shared/fixtures/`). The API Gateway ones and a response's JSON are HTTP:
//! `farmops_http::testing`.

/// The EventBridge scheduled event as AWS sends it (`shared/fixtures/eventbridge-scheduled-event.json`).
pub fn eventbridge_scheduled_event() -> serde_json::Value {
    serde_json::from_str(include_str!(
        "../../fixtures/eventbridge-scheduled-event.json"
    ))
    .expect("fixture is JSON")
}
