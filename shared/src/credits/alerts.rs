//! The low-balance alert dispatcher (issue 18, part 2): publishes each unsent row of
//! `credit_alert_outbox` (written by the database in the transaction whose debit crossed a
//! threshold, migration 0086) to Amazon EventBridge with `PutEvents` and marks it sent.
//!
//! Each event: source [`SOURCE`], detail-type [`DETAIL_TYPE`], detail
//! `{"id", "farm_id", "threshold", "balance", "time"}` where `id` is the outbox row's id, the
//! same on every attempt, so consumers de-duplicate on it: delivery is at least once (a
//! publish that succeeds and a commit that then fails publishes again on the next run).
//!
//! Per farm, a batch of at most 10 rows (PutEvents' limit) is taken `FOR UPDATE SKIP
//! LOCKED`, published, and marked sent in the same transaction: two dispatchers running at
//! once never take the same row, and a row whose publish failed (an error, or an entry the
//! service refused) stays unsent with its attempt counted, for the next run.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::{
    db::{Db, Type},
    error::{Error, Result},
};

pub const SOURCE: &str = "farmops.credits";
pub const DETAIL_TYPE: &str = "low_balance";
/// PutEvents takes at most 10 entries.
pub const BATCH: i64 = 10;

/// Where alerts go: the EventBridge client and the bus's name or ARN.
#[derive(Debug, Clone)]
pub struct AlertBus {
    pub client: aws_sdk_eventbridge::Client,
    pub bus_name: String,
}

impl AlertBus {
    /// A client from the shared AWS configuration (`endpoint`: a stub's URL in tests).
    pub fn new(base: &aws_config::SdkConfig, bus_name: &str, endpoint: Option<&str>) -> AlertBus {
        let mut config = aws_sdk_eventbridge::config::Builder::from(base);
        if let Some(url) = endpoint {
            config = config.endpoint_url(url);
        }
        AlertBus {
            client: aws_sdk_eventbridge::Client::from_conf(config.build()),
            bus_name: bus_name.to_string(),
        }
    }
}

impl AlertBus {
    /// The bus named by `FARMOPS_ALERT_BUS` over the cold start's shared AWS configuration
    /// (`aws`, loaded here only when a bus is named); `None` when it is unset or empty (alerts
    /// then wait in the outbox).
    pub async fn from_env(aws: &crate::aws::ColdStartAws) -> Option<AlertBus> {
        let bus = std::env::var("FARMOPS_ALERT_BUS")
            .ok()
            .filter(|b| !b.is_empty())?;
        let env = crate::config::Env(|k: &str| std::env::var(k).ok());
        Some(AlertBus::new(aws.sdk_config(&env).await, &bus, None))
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Dispatched {
    pub sent: u64,
    /// Rows whose publish failed this run (left unsent for the next).
    pub failed: u64,
}

/// Farms with unsent alerts (ids only; each is then read under its own tenant).
pub async fn farms_with_unsent_alerts(db: &Db) -> Result<Vec<Uuid>> {
    let client = db.client().await?;
    let rows = client
        .query_typed("SELECT farms_with_unsent_alerts()", &[])
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Publishes every farm's unsent alerts. A farm whose batch fails is left for the next run
/// (the others go on).
#[tracing::instrument(skip(db, bus))]
pub async fn dispatch_alerts(db: &Db, bus: &AlertBus) -> Result<Dispatched> {
    let mut total = Dispatched::default();
    for farm in farms_with_unsent_alerts(db).await? {
        let d = dispatch_farm(db, bus, farm).await?;
        total.sent += d.sent;
        total.failed += d.failed;
    }
    Ok(total)
}

/// Right after a chat turn: publishes the farm's unsent alerts (those the turn's debits wrote,
/// if any), best effort: a failure is logged and the reconcile step sends them later. Costs
/// one indexed read when there is nothing to send.
pub async fn publish_best_effort(db: &Db, bus: &AlertBus, farm_id: Uuid) {
    match dispatch_farm(db, bus, farm_id).await {
        Ok(d) if d.failed > 0 => {
            tracing::warn!(%farm_id, failed = d.failed, "low-balance alerts left for the reconcile step")
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(%farm_id, error = %e, "publishing low-balance alerts after the turn failed")
        }
    }
}

/// Publishes one farm's unsent alerts, a batch at a time, until none is left or a batch
/// fails.
#[tracing::instrument(skip(db, bus), fields(farm_id = %farm_id))]
pub async fn dispatch_farm(db: &Db, bus: &AlertBus, farm_id: Uuid) -> Result<Dispatched> {
    let mut total = Dispatched::default();
    loop {
        let d = dispatch_batch(db, bus, farm_id).await?;
        total.sent += d.sent;
        total.failed += d.failed;
        if d.sent == 0 || d.failed > 0 {
            return Ok(total);
        }
    }
}

/// One alert as the evidence page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertEvidence {
    /// The published event's id (`detail.id`).
    pub id: Uuid,
    pub threshold: i64,
    /// The balance the crossing debit left.
    pub balance: i64,
    pub created_at: DateTime<Utc>,
    /// When it was published; none while it waits in the outbox.
    pub sent_at: Option<DateTime<Utc>>,
    pub attempts: i32,
}

/// The tenant farm's latest `limit` alerts, newest first.
pub async fn recent_alerts(tx: &crate::db::TenantTx, limit: i64) -> Result<Vec<AlertEvidence>> {
    let farm_id = tx.farm_id();
    let rows = tx
        .query(
            "SELECT id, threshold, balance, created_at, sent_at, attempts FROM credit_alert_outbox
              WHERE farm_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
            &[(&farm_id, Type::UUID), (&limit, Type::INT8)],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| AlertEvidence {
            id: r.get(0),
            threshold: r.get(1),
            balance: r.get(2),
            created_at: r.get(3),
            sent_at: r.get(4),
            attempts: r.get(5),
        })
        .collect())
}

struct Row {
    id: Uuid,
    threshold: i64,
    balance: i64,
    created_at: DateTime<Utc>,
}

async fn dispatch_batch(db: &Db, bus: &AlertBus, farm_id: Uuid) -> Result<Dispatched> {
    let tx = db.tenant(farm_id).await?;
    let rows: Vec<Row> = tx
        .query(
            "SELECT id, threshold, balance, created_at FROM credit_alert_outbox
              WHERE farm_id = $1 AND sent_at IS NULL
              ORDER BY created_at, id LIMIT $2
              FOR UPDATE SKIP LOCKED",
            &[(&farm_id, Type::UUID), (&BATCH, Type::INT8)],
        )
        .await?
        .iter()
        .map(|r| Row {
            id: r.get(0),
            threshold: r.get(1),
            balance: r.get(2),
            created_at: r.get(3),
        })
        .collect();
    if rows.is_empty() {
        tx.commit().await?;
        return Ok(Dispatched::default());
    }
    let entries = rows
        .iter()
        .map(|r| {
            let detail = serde_json::json!({
                "id": r.id,
                "farm_id": farm_id,
                "threshold": r.threshold,
                "balance": r.balance,
                "time": r.created_at,
            });
            aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                .event_bus_name(&bus.bus_name)
                .source(SOURCE)
                .detail_type(DETAIL_TYPE)
                .detail(detail.to_string())
                .time(aws_smithy_types::DateTime::from_millis(
                    r.created_at.timestamp_millis(),
                ))
                .build()
        })
        .collect::<Vec<_>>();
    // (id, None: sent | Some(error))
    let outcomes: Vec<(Uuid, Option<String>)> = match bus
        .client
        .put_events()
        .set_entries(Some(entries))
        .send()
        .await
    {
        Ok(out) => rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let entry = out.entries().get(i);
                let error = match entry {
                    Some(e) if e.event_id().is_some() && e.error_code().is_none() => None,
                    Some(e) => Some(format!(
                        "{}: {}",
                        e.error_code().unwrap_or("refused"),
                        e.error_message().unwrap_or_default()
                    )),
                    None => Some("no result for the entry".to_string()),
                };
                (r.id, error)
            })
            .collect(),
        Err(e) => {
            let message = format!("{}", aws_sdk_eventbridge::error::DisplayErrorContext(&e));
            tracing::warn!(%farm_id, error = %message, "publishing low-balance alerts failed");
            rows.iter().map(|r| (r.id, Some(message.clone()))).collect()
        }
    };
    let mut done = Dispatched::default();
    for (id, error) in &outcomes {
        let error: Option<String> = error.as_ref().map(|e| e.chars().take(1000).collect());
        tx.query(
            "UPDATE credit_alert_outbox
                SET attempts = attempts + 1, last_error = $3,
                    sent_at = CASE WHEN $3::text IS NULL THEN now() END
              WHERE farm_id = $1 AND id = $2",
            &[
                (&farm_id, Type::UUID),
                (id, Type::UUID),
                (&error, Type::TEXT),
            ],
        )
        .await?;
        if error.is_none() {
            done.sent += 1;
        } else {
            done.failed += 1;
        }
    }
    tx.commit().await.map_err(|e| {
        Error::unexpected(format!(
            "marking alerts sent failed (they will be published again): {e}"
        ))
    })?;
    Ok(done)
}
