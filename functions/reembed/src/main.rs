//! reembed: cold start only (configuration, pool, embedder), then one raw-event loop that
//! dispatches to the HTTP routes or the scheduled sweep (see `lib.rs`).
#![recursion_limit = "256"]

use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use reembed::{State, handle_event};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    farmops::telemetry::init();
    let state = State::from_env().await?;
    let state = &state;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        handle_event(state, event.payload)
            .await
            .map_err(farmops_http::diagnostic)
    }))
    .await
}
