//! migrate: cold start only (configuration, pool); the work is in `migrate::handle`.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    farmops::telemetry::init();
    let state = migrate::State::from_lookup(|k| std::env::var(k).ok()).await?;
    let state = &state;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        migrate::handle(state, event.payload)
            .await
            .map_err(farmops_http::diagnostic)
    }))
    .await
}
