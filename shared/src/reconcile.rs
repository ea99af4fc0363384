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
//! Then it closes the credit lots past their expiry (or revoked by a refund) from which no open
//! run holds credits: one `expire_grant` leg per expired lot with what was left of it
//! ([`credits::close_lots`], migration 0080). Runs are expired first, so what an abandoned run
//! held from an expiring lot goes back to the lot and expires with it.
//!
//! The same pass then checkpoints the ledger of every farm with at least
//! [`ReconcileConfig::checkpoint_min_rows`] rows past its last checkpoint
//! ([`credits::checkpoint_ledger`], migration 0051), so the evidence and credits pages read
//! the farm's totals and invariant from the checkpoint plus a short tail.
//!
//! Then it publishes the low-balance alerts the debits left in the outbox (migration 0086,
//! [`credits::alerts::dispatch_alerts`]) when an alert bus is configured; a publish failure
//! leaves the rows for the next run.
//!
//! Last, it signs the evidence chain head of every farm whose chain moved since its last signed
//! checkpoint (`evidence::signing::sign_due`, migration 0090) when a signer is configured
//! (`evidence::signing::signer_from_env`: a KMS key in AWS, a key file locally).
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `FARMOPS_ALERT_BUS` | unset | the EventBridge bus (name or ARN) low-balance alerts are published to; unset: alerts stay in the outbox ([`credits::alerts::AlertBus::from_env`]). |
//! | `FARMOPS_MAX_RUN_SECS` | `900` | the longest a run can last. Must exceed the longest function timeout (API Gateway caps HTTP at 30 s; Lambda at 900 s), so a run still in progress is never expired. A reservation older than this is abandoned. |
//! | `FARMOPS_CHECKPOINT_MIN_ROWS` | `500` | a farm's ledger is checkpointed once it has at least this many rows past its last checkpoint (at least 1). |
//! | `FARMOPS_CHECKPOINT_MAX_AGE_SECS` | `86400` | ... or any new row once its last checkpoint is older than this (at least 60). |

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
    /// Ledger rows past a farm's last checkpoint that make the job checkpoint it.
    pub checkpoint_min_rows: i64,
    /// A farm with any new ledger row whose last checkpoint is older than this is checkpointed.
    pub checkpoint_max_age: Duration,
}

impl ReconcileConfig {
    pub const DEFAULT_MAX_RUN_SECS: u64 = 900;
    pub const DEFAULT_CHECKPOINT_MIN_ROWS: i64 = 500;
    pub const DEFAULT_CHECKPOINT_MAX_AGE_SECS: u64 = 86_400;

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
        let checkpoint_min_rows: i64 = env.parsed(
            "FARMOPS_CHECKPOINT_MIN_ROWS",
            Self::DEFAULT_CHECKPOINT_MIN_ROWS,
        )?;
        if checkpoint_min_rows < 1 {
            return Err(ConfigError::Invalid {
                var: "FARMOPS_CHECKPOINT_MIN_ROWS",
                reason: format!("{checkpoint_min_rows}: must be at least 1"),
            });
        }
        let max_age: u64 = env.parsed(
            "FARMOPS_CHECKPOINT_MAX_AGE_SECS",
            Self::DEFAULT_CHECKPOINT_MAX_AGE_SECS,
        )?;
        if max_age < 60 {
            return Err(ConfigError::Invalid {
                var: "FARMOPS_CHECKPOINT_MAX_AGE_SECS",
                reason: format!("{max_age}: must be at least 60"),
            });
        }
        Ok(ReconcileConfig {
            max_run: Duration::from_secs(secs),
            checkpoint_min_rows,
            checkpoint_max_age: Duration::from_secs(max_age),
        })
    }
}

/// Everything the job needs, built once at cold start.
#[derive(Clone)]
pub struct ReconcileState {
    pub db: Db,
    pub config: ReconcileConfig,
    /// Where low-balance alerts are published; `None`: they wait in the outbox.
    pub alerts: Option<credits::alerts::AlertBus>,
    /// Signs the farms' evidence chain heads; none: no signing.
    pub signer: Option<std::sync::Arc<dyn crate::evidence::signing::CheckpointSigner>>,
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
    /// Credit lots closed (past expiry or revoked, nothing held from them), and the credits
    /// their `expire_grant` legs took.
    pub lots_closed: i64,
    pub grant_credits_expired: i64,
    /// Farms whose ledger was checkpointed, and the ledger rows folded in.
    pub ledgers_checkpointed: usize,
    pub ledger_rows_checkpointed: i64,
    /// Low-balance alerts published, and those whose publish failed (left for the next run).
    pub alerts_sent: u64,
    pub alerts_failed: u64,
    /// Farms whose evidence chain head was signed.
    pub evidence_checkpoints_signed: usize,
}

/// One pass: every farm with a reservation older than `now - max_run`, each in its own
/// transaction. A farm that fails is logged and left for the next run; the others proceed.
#[tracing::instrument(skip(state))]
pub async fn run_once(state: &ReconcileState) -> Result<ReconcileOutcome> {
    let max_run = chrono::Duration::from_std(state.config.max_run)
        .map_err(|e| crate::Error::unexpected(format!("max run: {e}")))?;
    let mut outcome = run_at(&state.db, Utc::now() - max_run).await?;
    let (farms, rows, failed) = checkpoint_ledgers(
        &state.db,
        state.config.checkpoint_min_rows,
        state.config.checkpoint_max_age,
    )
    .await?;
    outcome.ledgers_checkpointed = farms;
    outcome.ledger_rows_checkpointed = rows;
    outcome.farms_failed += failed;
    tracing::info!(
        ledgers_checkpointed = farms,
        ledger_rows_checkpointed = rows,
        "ledger checkpoints taken"
    );
    if let Some(bus) = &state.alerts {
        match credits::alerts::dispatch_alerts(&state.db, bus).await {
            Ok(d) => {
                outcome.alerts_sent = d.sent;
                outcome.alerts_failed = d.failed;
            }
            Err(e) => {
                tracing::error!(error = %e, cause = ?std::error::Error::source(&e), "publishing low-balance alerts failed");
            }
        }
    }
    if let Some(signer) = &state.signer {
        match crate::evidence::signing::sign_due(&state.db, signer.as_ref()).await {
            Ok(signed) => outcome.evidence_checkpoints_signed = signed.len(),
            Err(e) => {
                outcome.farms_failed += 1;
                tracing::error!(error = %e, "signing evidence checkpoints failed");
            }
        }
    }
    Ok(outcome)
}

/// Checkpoints the ledger of every farm due one (`credits::farms_due_ledger_checkpoint`), each
/// in its own transaction: (farms checkpointed, rows folded, farms failed).
pub async fn checkpoint_ledgers(
    db: &Db,
    min_rows: i64,
    max_age: Duration,
) -> Result<(usize, i64, usize)> {
    let mut done = (0, 0, 0);
    for farm_id in credits::farms_due_ledger_checkpoint(db, min_rows, max_age).await? {
        let folded = async {
            let tx = db.tenant(farm_id).await?;
            let folded = credits::checkpoint_ledger(&tx).await?;
            tx.commit().await?;
            Ok::<_, crate::Error>(folded)
        };
        match folded.await {
            Ok(rows) => {
                done.0 += usize::from(rows > 0);
                done.1 += rows;
            }
            Err(e) => {
                done.2 += 1;
                tracing::error!(%farm_id, error = %e, "checkpointing a farm's ledger failed");
            }
        }
    }
    Ok(done)
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
    // after the runs: an abandoned run's hold goes back to its lots before they close
    for farm_id in credits::farms_with_lots_to_close(db).await? {
        match close_farm_lots(db, farm_id).await {
            Ok(closed) => {
                outcome.lots_closed += closed.lots;
                outcome.grant_credits_expired += closed.credits_expired;
            }
            Err(e) => {
                outcome.farms_failed += 1;
                tracing::error!(%farm_id, error = %e, cause = ?std::error::Error::source(&e), "closing a farm's credit lots failed");
            }
        }
    }
    tracing::info!(
        farms = outcome.farms,
        runs_expired = outcome.runs_expired,
        lots_closed = outcome.lots_closed,
        grant_credits_expired = outcome.grant_credits_expired,
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

async fn close_farm_lots(db: &Db, farm_id: Uuid) -> Result<credits::ClosedLots> {
    let tx = db.tenant(farm_id).await?;
    let closed = credits::close_lots(&tx).await?;
    tx.commit().await?;
    Ok(closed)
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

    #[test]
    fn checkpoint_threshold_defaults_and_is_validated() {
        let cases: [(Option<&str>, Option<i64>); 5] = [
            (None, Some(500)),
            (Some("1"), Some(1)),
            (Some("20000"), Some(20_000)),
            (Some("0"), None),
            (Some("many"), None),
        ];
        for (value, expected) in cases {
            let got = ReconcileConfig::from_lookup(|v| {
                (v == "FARMOPS_CHECKPOINT_MIN_ROWS")
                    .then(|| value.map(str::to_string))
                    .flatten()
            });
            assert_eq!(
                got.ok().map(|c| c.checkpoint_min_rows),
                expected,
                "{value:?}"
            );
        }
    }
}
