//! Cold start: configuration, pool, extractor and embedder built once, then the Lambda runtime
//! loop. Reads `FARMOPS_DATABASE_URL` (and the pool variables of `farmops::config`) and the
//! `FARMOPS_DISTILL_*` variables (`farmops::memory::distill`).
//!
//! The extractor comes from `farmops::memory::model_extract::extractor_from_env`:
//! `FARMOPS_CHAT_PROVIDER=bedrock` -> the model extractor over Bedrock Converse
//! (`FARMOPS_DISTILL_MODEL_ID`, else `FARMOPS_CHAT_MODEL_ID`; a model without a price is refused
//! here), `offline` or unset -> the deterministic offline one, any other value stops the cold
//! start naming the variable. The embedder is the one named by
//! `FARMOPS_EMBEDDER` (`farmops::embed::embedder_from_env`, default `offline`), the same model
//! documents and retrieval use.

use distill_memories::{State, handle};
use farmops::{
    config::{Config, Env},
    memory::{distill::DistillConfig, model_extract::extractor_from_env},
};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    farmops::telemetry::init();
    let config = Config::from_env()?;
    let env = Env(|k: &str| std::env::var(k).ok());
    // One AWS configuration and Bedrock client for the extractor's model and the embedder.
    let aws = farmops::aws::ColdStartAws::default();
    let state = State {
        db: farmops::db::connect_from_config(&config.database).await?,
        extractor: extractor_from_env(&env, &aws).await?,
        embedder: farmops::embed::embedder_from_env(&env, "offline", &aws).await?,
        config: DistillConfig::from_env()?,
    };
    let state = &state;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move {
        handle(state, event).await.map_err(farmops_http::diagnostic)
    }))
    .await
}
