//! migrate: applies the embedded migrations as the owner role. Idempotent; returns the
//! versions it applied. Reads `FARMOPS_OWNER_DATABASE_URL`.

use farmops::db::Db;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    farmops::telemetry::init();
    let url = std::env::var("FARMOPS_OWNER_DATABASE_URL")
        .map_err(|_| "FARMOPS_OWNER_DATABASE_URL is not set")?;
    let db = Db::for_url(&url)?;
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<Value>| {
        let db = db.clone();
        async move {
            let client = db.client().await?;
            let applied = farmops::db::migrate::migrate(&client).await?;
            Ok::<_, Error>(json!({ "applied": applied }))
        }
    }))
    .await
}
