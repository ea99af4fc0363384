//! The reconcile-credits job: expires reservations of runs that never settled and refunds them.
//!
//! A run reserves credits before its model call and settles after it. If its Lambda dies in
//! between, the reservation would stay taken forever; this job, on a schedule, expires every
//! reservation opened more than [`ReconcileConfig::max_run`] ago (full refund, `expire` ledger
//! leg, run marked `expired`). Each farm is reconciled in its own tenant transaction by
//! [`credits::expire_reservations`], which skips rows another transaction holds (a run settling
//! right now, a concurrent reconcile) and never touches a closed run: running the job twice, or
//! two copies at once, refunds each reservation exactly once.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `FARMOPS_MAX_RUN_SECS` | `900` | the longest a run can last. Must exceed the longest function timeout (API Gateway caps HTTP at 30 s; Lambda at 900 s), so a run still in progress is never expired. A reservation older than this is abandoned. |

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::{
    config::{ConfigError, Env},
    credits,
    db::Db,
    error::Result,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcileConfig {
    /// Reservations older than this are expired.
    pub max_run: Duration,
}

impl ReconcileConfig {
    pub const DEFAULT_MAX_RUN_SECS: u64 = 900;

    pub fn from_env() -> std::result::Result<Self, ConfigError> {
        Self::from_lookup(|v| std::env::var(v).ok())
    }

    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> std::result::Result<Self, ConfigError> {
        let env = Env(lookup);
        let secs: u64 = env.parsed("FARMOPS_MAX_RUN_SECS", Self::DEFAULT_MAX_RUN_SECS)?;
        if secs < 60 {
            return Err(ConfigError::Invalid {
                var: "FARMOPS_MAX_RUN_SECS",
                reason: format!("{secs}: must be at least 60 (above any function timeout)"),
            });
        }
        Ok(ReconcileConfig {
            max_run: Duration::from_secs(secs),
        })
    }
}

/// Everything the job needs, built once at cold start.
#[derive(Clone)]
pub struct ReconcileState {
    pub db: Db,
    pub config: ReconcileConfig,
}

/// What one invocation did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileOutcome {
    pub cutoff: DateTime<Utc>,
    /// Farms that held stale reservations when the job looked.
    pub farms: usize,
    pub runs_expired: i64,
    pub credits_refunded: i64,
    /// Farms whose transaction failed (logged; retried by the next invocation).
    pub farms_failed: usize,
}

/// One pass: every farm with a reservation older than `now - max_run`, each in its own
/// transaction. A farm that fails is logged and left for the next run; the others proceed.
#[tracing::instrument(skip(state))]
pub async fn run_once(state: &ReconcileState) -> Result<ReconcileOutcome> {
    let max_run = chrono::Duration::from_std(state.config.max_run)
        .map_err(|e| crate::Error::unexpected(format!("max run: {e}")))?;
    run_at(&state.db, Utc::now() - max_run).await
}

/// [`run_once`] with an explicit cutoff (tests and operators).
pub async fn run_at(db: &Db, cutoff: DateTime<Utc>) -> Result<ReconcileOutcome> {
    let farms = credits::farms_with_open_reservations(db, cutoff).await?;
    let mut outcome = ReconcileOutcome {
        cutoff,
        farms: farms.len(),
        ..Default::default()
    };
    for farm_id in farms {
        match expire_farm(db, farm_id, cutoff).await {
            Ok(expired) => {
                outcome.runs_expired += expired.runs;
                outcome.credits_refunded += expired.credits_refunded;
            }
            Err(e) => {
                outcome.farms_failed += 1;
                tracing::error!(%farm_id, error = %e, cause = ?std::error::Error::source(&e), "reconciling a farm failed");
            }
        }
    }
    tracing::info!(
        farms = outcome.farms,
        runs_expired = outcome.runs_expired,
        credits_refunded = outcome.credits_refunded,
        farms_failed = outcome.farms_failed,
        cutoff = %outcome.cutoff,
        "reconcile-credits finished"
    );
    Ok(outcome)
}

async fn expire_farm(db: &Db, farm_id: Uuid, cutoff: DateTime<Utc>) -> Result<credits::Expired> {
    let tx = db.tenant(farm_id).await?;
    let expired = credits::expire_reservations(&tx, cutoff).await?;
    tx.commit().await?;
    Ok(expired)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_run_defaults_above_every_timeout_and_is_validated() {
        let cases: [(Option<&str>, std::result::Result<u64, ()>); 5] = [
            (None, Ok(900)),
            (Some("1200"), Ok(1200)),
            (Some("59"), Err(())),
            (Some("soon"), Err(())),
            (Some("-5"), Err(())),
        ];
        for (value, expected) in cases {
            let got = ReconcileConfig::from_lookup(|v| {
                (v == "FARMOPS_MAX_RUN_SECS")
                    .then(|| value.map(str::to_string))
                    .flatten()
            });
            match expected {
                Ok(secs) => {
                    assert_eq!(got.unwrap().max_run, Duration::from_secs(secs), "{value:?}")
                }
                Err(()) => assert!(got.is_err(), "{value:?} must be refused"),
            }
        }
    }
}
