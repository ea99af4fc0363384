//! Cold start: configuration, pool, extractor and embedder built once, then the Lambda runtime
//! loop. Reads `FARMOPS_DATABASE_URL` (and the pool variables of `farmops::config`) and the
//! `FARMOPS_DISTILL_*` variables (`farmops::memory::distill`).
//!
//! The extractor is the deterministic offline one; the embedder is the one named by
//! `FARMOPS_EMBEDDER` (`farmops::embed::embedder_from_env`, default `offline`), the same model
//! documents and retrieval use. A Bedrock-backed extractor would plug in here.

use std::sync::Arc;

use distill_memories::{State, handle};
use farmops::{
    config::Config,
    memory::{EmbedderAdapter, distill::DistillConfig, extract::OfflineFactExtractor},
};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    farmops::telemetry::init();
    let config = Config::from_env()?;
    let state = State {
        db: farmops::db::connect_from_config(&config.database).await?,
        extractor: Arc::new(OfflineFactExtractor::default()),
        embedder: Arc::new(EmbedderAdapter(
            farmops::embed::embedder_from_env(
                &farmops::config::Env(|k: &str| std::env::var(k).ok()),
                "offline",
            )
            .await?,
        )),
        config: DistillConfig::from_env()?,
    };
    let state = &state;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move {
        handle(state, event).await.map_err(Error::from)
    }))
    .await
}
