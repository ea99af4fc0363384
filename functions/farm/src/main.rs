//! farm: cold start only (configuration, pool), then the handler in `lib.rs`.

use farm::{State, handle};
use lambda_http::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    farmops::telemetry::init();
    let state = State::from_env().await?;
    let state = &state;
    lambda_http::run(service_fn(move |req| async move {
        Ok::<_, std::convert::Infallible>(handle(state, req).await)
    }))
    .await
}
