//! migrate: bootstraps the database roles and applies the embedded migrations as the owner
//! role, inside the VPC. Idempotent: run it after every deploy (README "Deploy"):
//! `aws lambda invoke --function-name <MigrateFunctionName> out.json`.
//!
//! Connection (see `farmops::config` for every variable):
//! * `FARMOPS_OWNER_DATABASE_URL` (+ `FARMOPS_DB_TLS`, `FARMOPS_DB_CA_BUNDLE`,
//!   `FARMOPS_DB_IAM_AUTH`): where to connect.
//! * `FARMOPS_DB_ADMIN_SECRET_ARN` (in AWS): the cluster's master credentials from Secrets
//!   Manager replace the URL's user and password; the roles are bootstrapped as that admin and
//!   the migrations run after `SET ROLE farmops_owner`. `FARMOPS_MIGRATE_BOOTSTRAP=1` does the
//!   same with the URL's own (admin) credentials. Otherwise the URL is the owner: migrate only.

use farmops::{
    config::{ConfigError, DatabaseConfig, Env},
    db::{self, Db, bootstrap},
};
use serde_json::{Value, json};

pub struct State {
    pub db: Db,
    pub bootstrap: bool,
}

impl State {
    /// Reads the configuration and builds the pool (no connection opened yet).
    pub async fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<State, Box<dyn std::error::Error + Send + Sync>> {
        let env = Env(lookup);
        let config = DatabaseConfig::from_env_with_url(&env, "FARMOPS_OWNER_DATABASE_URL")?;
        let bootstrap_flag = match env.optional("FARMOPS_MIGRATE_BOOTSTRAP").as_deref() {
            None | Some("0") => false,
            Some("1") => true,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    var: "FARMOPS_MIGRATE_BOOTSTRAP",
                    reason: format!("{other:?}: expected 0 or 1"),
                }
                .into());
            }
        };
        match env.optional("FARMOPS_DB_ADMIN_SECRET_ARN") {
            Some(arn) => {
                let region = env.optional("AWS_REGION");
                let (user, password) =
                    farmops::aws::admin_credentials(&arn, region.as_deref()).await?;
                Ok(State {
                    db: db::connect_with_credentials(&config, &user, password)?,
                    bootstrap: true,
                })
            }
            None => Ok(State {
                db: db::connect_from_config(&config).await?,
                bootstrap: bootstrap_flag,
            }),
        }
    }
}

/// One run: `{"bootstrapped": bool, "rds_iam": bool, "applied": [versions]}`. The event is
/// ignored (a plain `aws lambda invoke` sends `{}`).
pub async fn handle(state: &State, _event: Value) -> farmops::Result<Value> {
    let client = state.db.client().await?;
    let report = if state.bootstrap {
        bootstrap::bootstrap_and_migrate(&client).await?
    } else {
        bootstrap::migrate_only(&client).await?
    };
    tracing::info!(applied = ?report.applied, bootstrapped = report.bootstrapped, "migrated");
    Ok(json!(report))
}
