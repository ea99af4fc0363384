//! The farm's settings: its AI autonomy (tier, auto categories, per-type overrides), the
//! tier each record type actually gets, its time zone, and the floor no setting lifts.
//!
//! Every member reads them. Only the owner changes the autonomy ([`Role::may_set_autonomy`]),
//! validated by [`AutonomyChange::validate`] (the operator CLI's rules too) and written
//! through the database's one door, `set_farm_autonomy` (migration 0070: the application
//! role has no grant on the columns), which checks the role and the floor again, locks the
//! farm row and records the change (who, when, before, after) in `farm_events`. A chat turn
//! reads the settings once, at its start: a turn already running keeps what it read, the next
//! one gets the new settings.

use std::collections::BTreeMap;

use serde::Serialize;
use uuid::Uuid;

use super::refusal;
use crate::{
    autonomy::{AutonomyChange, AutonomySettings, FLOOR, Tier, resolve_autonomy},
    db::{TenantTx, Type},
    error::{Error, Result},
    membership::{self, Role},
    records::RecordType,
};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Floor {
    /// Always drafts, whatever the settings say.
    pub record_types: Vec<RecordType>,
    pub tier: Tier,
    pub rule: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Settings {
    pub farm_id: Uuid,
    pub autonomy: AutonomySettings,
    /// What the AI may do with each record type under these settings (the executor's own
    /// resolution).
    pub effective: BTreeMap<RecordType, Tier>,
    pub time_zone: String,
    pub floor: Floor,
}

const FLOOR_RULE: &str = "sale, expense and mortality records are never written by the AI directly: \
     they are always drafts a human confirms, whatever the tier, categories or overrides";

/// `GET /farms/{farm_id}/settings` (every member).
#[tracing::instrument(skip(tx), fields(farm_id = %tx.farm_id()))]
pub async fn get(tx: &TenantTx, user_id: &str) -> Result<Settings> {
    membership::member_role(tx, user_id).await?;
    read(tx).await
}

async fn read(tx: &TenantTx) -> Result<Settings> {
    let farm_id = tx.farm_id();
    let row = tx
        .query_opt(
            "SELECT ai_autonomy, ai_auto_categories, ai_record_autonomy, time_zone
               FROM farms WHERE id = $1",
            &[(&farm_id, Type::UUID)],
        )
        .await?
        .ok_or(Error::NotFound("farm"))?;
    let settings = AutonomySettings::from_columns(row.get(0), &row.get(1), &row.get(2))?;
    Ok(Settings {
        farm_id,
        effective: RecordType::ALL
            .iter()
            .map(|t| (*t, resolve_autonomy(&settings, *t)))
            .collect(),
        autonomy: settings,
        time_zone: row.get(3),
        floor: Floor {
            record_types: FLOOR.to_vec(),
            tier: Tier::Draft,
            rule: FLOOR_RULE,
        },
    })
}

/// `PUT /farms/{farm_id}/settings/autonomy` (owner): a field left out keeps its value.
/// Answers the settings as they now are.
#[tracing::instrument(skip(tx, change), fields(farm_id = %tx.farm_id()))]
pub async fn set_autonomy(
    tx: &TenantTx,
    user_id: &str,
    change: &AutonomyChange,
) -> Result<Settings> {
    membership::require_role(
        tx,
        user_id,
        "change the farm's autonomy",
        Role::may_set_autonomy,
    )
    .await?;
    let valid = change.validate()?;
    let tier = valid.tier.map(Tier::as_str);
    let categories = valid.auto_categories.as_ref().map(to_json).transpose()?;
    let overrides = valid.overrides.as_ref().map(to_json).transpose()?;
    tx.query(
        "SELECT set_farm_autonomy($1, $2, $3, $4)",
        &[
            (&user_id, Type::TEXT),
            (&tier, Type::TEXT),
            (&categories, Type::JSONB),
            (&overrides, Type::JSONB),
        ],
    )
    .await
    .map_err(refusal)?;
    read(tx).await
}

fn to_json<T: Serialize>(v: &T) -> Result<serde_json::Value> {
    serde_json::to_value(v).map_err(|e| Error::unexpected(e.to_string()))
}
