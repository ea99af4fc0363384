//! Cold start: configuration, pool, extractor and embedder built once, then the Lambda runtime
//! loop. Reads `FARMOPS_DATABASE_URL` (and the pool variables of `farmops::config`) and the
//! `FARMOPS_DISTILL_*` variables (`farmops::memory::distill`).
//!
//! The extractor is the deterministic offline one and the embedder the local hashed-word one;
//! the Bedrock-backed implementations of the two traits plug in here.

use std::sync::Arc;

use distill_memories::{State, handle};
use farmops::{
    config::Config,
    memory::{HashedWordEmbedder, distill::DistillConfig, extract::OfflineFactExtractor},
};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    farmops::telemetry::init();
    let config = Config::from_env()?;
    let state = State {
        db: farmops::db::connect_from_config(&config.database).await?,
        extractor: Arc::new(OfflineFactExtractor::default()),
        embedder: Arc::new(HashedWordEmbedder),
        config: DistillConfig::from_env()?,
    };
    let state = &state;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move {
        handle(state, event).await.map_err(Error::from)
    }))
    .await
}
