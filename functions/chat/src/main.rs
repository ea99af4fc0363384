//! chat: cold start builds the pool, the model and the retriever once, then serves.
//! `FARMOPS_CHAT_PROVIDER=bedrock` uses Bedrock Converse (`FARMOPS_CHAT_MODEL_ID`), `offline`
//! or unset the offline model, any other value stops the cold start (`farmops::model::from_env`). See `farmops::chat::ChatLimits` and `farmops::aws` for the rest.

use std::sync::Arc;

use chat::{State, handle};
use farmops::{
    chat::ChatLimits,
    config::{Config, Env},
    model::{ChatModel, ConfiguredModel, offline::OfflineChat},
    rag::PgRetriever,
};
use farmops_http::IdentitySource;
use lambda_http::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    farmops::telemetry::init();
    let config = Config::from_env()?;
    let env = Env(|k: &str| std::env::var(k).ok());
    let limits = ChatLimits::from_env(&env)?;
    let db = farmops::db::connect_from_config(&config.database).await?;
    let model_id = env
        .optional("FARMOPS_CHAT_MODEL_ID")
        .unwrap_or_else(|| farmops::model::DEFAULT_BEDROCK_MODEL_ID.into());
    // One AWS configuration and Bedrock client for the model, the embedder and the alert bus.
    let aws = farmops::aws::ColdStartAws::default();
    let model: Arc<dyn ChatModel> = match farmops::model::from_env(&env, &model_id, &aws).await? {
        ConfiguredModel::Bedrock(model) => model,
        ConfiguredModel::Offline => Arc::new(OfflineChat),
    };
    let state = Arc::new(State {
        db,
        identity: IdentitySource::from_env(),
        model,
        retriever: Arc::new(PgRetriever {
            embedder: farmops::embed::embedder_from_env(&env, "offline", &aws).await?,
        }),
        limits,
        alerts: farmops::credits::alerts::AlertBus::from_env(&aws).await,
    });
    lambda_http::run(service_fn(move |req| {
        let state = Arc::clone(&state);
        async move { Ok::<_, Error>(handle(&state, req).await) }
    }))
    .await
}
