//! Cold start: configuration and pool built once, then the Lambda runtime loop.
//! Reads `FARMOPS_DATABASE_URL` (and the pool variables of `farmops::config`) and
//! `FARMOPS_MAX_RUN_SECS` and `FARMOPS_ALERT_BUS` (`farmops::reconcile`), and the evidence
//! checkpoint signer's `FARMOPS_EVIDENCE_*` (`farmops::evidence::signing::signer_from_env`).

use farmops::{config::Config, reconcile::ReconcileConfig};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use reconcile_credits::{State, handle};

#[tokio::main]
async fn main() -> Result<(), Error> {
    farmops::telemetry::init();
    let config = Config::from_env()?;
    // One AWS configuration for the alert bus and the checkpoint signer's KMS client.
    let aws = farmops::aws::ColdStartAws::default();
    let state = State {
        db: farmops::db::connect_from_config(&config.database).await?,
        config: ReconcileConfig::from_env()?,
        alerts: farmops::credits::alerts::AlertBus::from_env(&aws).await,
        signer: farmops::evidence::signing::signer_from_env(|k| std::env::var(k).ok(), &aws)
            .await?,
    };
    let state = &state;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move {
        handle(state, event).await.map_err(farmops_http::diagnostic)
    }))
    .await
}
