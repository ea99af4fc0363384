//! billing: cold start only (configuration, the Paystack secret key, the pool), then the
//! handler in `lib.rs`. A missing setting stops the cold start naming the variable.

use billing::{State, handle};
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
