//! How far the AI may act on its own, per farm and record type.
//!
//! The one decider, [`resolve_autonomy`] (the design's rule, `DESIGN.md` "Autonomy"):
//!
//! ```text
//! resolve(farm, record_type):
//!   if record_type in farm.ai_record_autonomy:                      # per-type override wins
//!     tier = farm.ai_record_autonomy[record_type]; may_auto = (tier == auto)
//!   else:
//!     tier = farm.ai_autonomy; may_auto = tier == auto and record_type in farm.ai_auto_categories
//!   if tier == suggest: return suggest                              # nothing is written, not even a draft
//!   if record_type in {sale, expense, mortality}: return draft      # hard floor: never written directly
//!   if may_auto: return auto
//!   return draft
//! ```
//!
//! `suggest` writes nothing (a write tool refuses and the model says it in words); the floor
//! only ever LOWERS `auto` to `draft`, it never raises `suggest`. A per-type override of `auto`
//! makes that type auto on its own (the owner named it); the farm-wide `auto` tier still needs
//! the type in the auto-categories. Recommendations are decided here too
//! ([`resolve_recommendation`]): a draft for a human to approve, or nothing in `suggest`. The
//! schema holds the floor again: sales, expenses and mortality tables refuse
//! `source = 'ai_auto'`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    db::{TenantTx, Type},
    error::{Error, FieldError, Result},
    records::RecordType,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// The AI may only suggest in words; write tools refuse.
    Suggest,
    /// The AI writes drafts a human confirms.
    Draft,
    /// The AI writes the record directly (allowed categories only).
    Auto,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Suggest => "suggest",
            Tier::Draft => "draft",
            Tier::Auto => "auto",
        }
    }

    pub fn parse(s: &str) -> Option<Tier> {
        [Tier::Suggest, Tier::Draft, Tier::Auto]
            .into_iter()
            .find(|t| t.as_str() == s)
    }
}

/// A farm's autonomy settings (columns `ai_autonomy`, `ai_auto_categories`, `ai_record_autonomy`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutonomySettings {
    pub tier: Tier,
    pub auto_categories: BTreeSet<RecordType>,
    pub overrides: BTreeMap<RecordType, Tier>,
}

impl Default for AutonomySettings {
    fn default() -> Self {
        AutonomySettings {
            tier: Tier::Draft,
            auto_categories: BTreeSet::new(),
            overrides: BTreeMap::new(),
        }
    }
}

/// The tier that applies to one write of `record_type` on a farm with `settings` (the rule in
/// the module doc).
pub fn resolve_autonomy(settings: &AutonomySettings, record_type: RecordType) -> Tier {
    let (tier, may_auto) = match settings.overrides.get(&record_type) {
        Some(&tier) => (tier, tier == Tier::Auto),
        None => (
            settings.tier,
            settings.tier == Tier::Auto && settings.auto_categories.contains(&record_type),
        ),
    };
    if tier == Tier::Suggest {
        Tier::Suggest
    } else if record_type.is_financial_or_destructive() || !may_auto {
        Tier::Draft
    } else {
        Tier::Auto
    }
}

/// The tier of a recommendation the AI makes: `suggest` on a farm whose tier is `suggest`
/// (nothing is written), otherwise `draft` (a human approves it; never `auto`).
pub fn resolve_recommendation(settings: &AutonomySettings) -> Tier {
    match settings.tier {
        Tier::Suggest => Tier::Suggest,
        Tier::Draft | Tier::Auto => Tier::Draft,
    }
}

impl AutonomySettings {
    /// Reads the settings from the stored columns, refusing unknown names (the schema
    /// checks the shapes; the names are checked here).
    pub fn from_columns(
        tier: &str,
        auto_categories: &serde_json::Value,
        overrides: &serde_json::Value,
    ) -> Result<Self> {
        let tier = Tier::parse(tier)
            .ok_or_else(|| Error::invalid("ai_autonomy", format!("unknown tier {tier:?}")))?;
        let auto_categories = serde_json::from_value(auto_categories.clone())
            .map_err(|e| Error::invalid("ai_auto_categories", e.to_string()))?;
        let overrides = serde_json::from_value(overrides.clone())
            .map_err(|e| Error::invalid("ai_record_autonomy", e.to_string()))?;
        Ok(AutonomySettings {
            tier,
            auto_categories,
            overrides,
        })
    }
}

/// The record types no setting lets the AI write directly (financial or destructive): always
/// drafts. The schema refuses `source = 'ai_auto'` on their tables too.
pub const FLOOR: [RecordType; 3] = [RecordType::Mortality, RecordType::Sale, RecordType::Expense];

/// A requested change of a farm's autonomy, as names (the API's body; the operator CLI builds
/// the same from its flags). A field left out keeps its current value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutonomyChange {
    pub tier: Option<String>,
    pub auto_categories: Option<Vec<String>>,
    pub overrides: Option<BTreeMap<String, String>>,
}

/// An [`AutonomyChange`] that passed [`AutonomyChange::validate`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidChange {
    pub tier: Option<Tier>,
    pub auto_categories: Option<BTreeSet<RecordType>>,
    pub overrides: Option<BTreeMap<RecordType, Tier>>,
}

impl ValidChange {
    /// The change applied to `current`.
    pub fn apply(&self, current: &AutonomySettings) -> AutonomySettings {
        AutonomySettings {
            tier: self.tier.unwrap_or(current.tier),
            auto_categories: self
                .auto_categories
                .clone()
                .unwrap_or_else(|| current.auto_categories.clone()),
            overrides: self
                .overrides
                .clone()
                .unwrap_or_else(|| current.overrides.clone()),
        }
    }
}

fn floor_message(t: RecordType) -> String {
    format!(
        "{t} is under the floor: sale, expense and mortality are never written directly by the AI (always drafts)"
    )
}

impl AutonomyChange {
    /// The rules every change obeys, wherever it comes from (API or CLI): known tiers and
    /// record types, and the floor ([`FLOOR`]) never lifted: naming one of its types as an
    /// auto category, or overriding one to `auto`, is refused. Every bad field is a 422.
    pub fn validate(&self) -> Result<ValidChange> {
        let mut errors = Vec::new();
        let tier_of = |field: &str, s: &str, errors: &mut Vec<FieldError>| {
            let t = Tier::parse(s.trim());
            if t.is_none() {
                errors.push(FieldError::new(
                    field,
                    format!("unknown tier {s:?} (suggest, draft, auto)"),
                ));
            }
            t
        };
        let type_of = |field: &str, s: &str, errors: &mut Vec<FieldError>| {
            let t = RecordType::parse(s.trim());
            if t.is_none() {
                errors.push(FieldError::new(field, format!("unknown record type {s:?}")));
            }
            t
        };
        let mut change = ValidChange {
            tier: self
                .tier
                .as_deref()
                .and_then(|s| tier_of("tier", s, &mut errors)),
            ..Default::default()
        };
        if let Some(categories) = &self.auto_categories {
            let mut set = BTreeSet::new();
            for c in categories {
                if let Some(t) = type_of("auto_categories", c, &mut errors) {
                    if FLOOR.contains(&t) {
                        errors.push(FieldError::new("auto_categories", floor_message(t)));
                    }
                    set.insert(t);
                }
            }
            change.auto_categories = Some(set);
        }
        if let Some(overrides) = &self.overrides {
            let mut map = BTreeMap::new();
            for (k, v) in overrides {
                let t = type_of("overrides", k, &mut errors);
                let tier = tier_of("overrides", v, &mut errors);
                if let (Some(t), Some(tier)) = (t, tier) {
                    if FLOOR.contains(&t) && tier == Tier::Auto {
                        errors.push(FieldError::new("overrides", floor_message(t)));
                    }
                    map.insert(t, tier);
                }
            }
            change.overrides = Some(map);
        }
        if errors.is_empty() {
            Ok(change)
        } else {
            Err(Error::Invalid(errors))
        }
    }
}

/// Loads a farm's settings inside its tenant transaction.
pub async fn load_autonomy(tx: &TenantTx, farm_id: Uuid) -> Result<AutonomySettings> {
    let row = tx
        .query_opt(
            "SELECT ai_autonomy, ai_auto_categories, ai_record_autonomy FROM farms WHERE id = $1",
            &[(&farm_id, Type::UUID)],
        )
        .await?
        .ok_or(Error::NotFound("farm"))?;
    AutonomySettings::from_columns(row.get(0), &row.get(1), &row.get(2))
}

/// Stores a farm's settings. Only the owner role may (the application role has no UPDATE
/// grant on these columns: the AI's own process can never raise its autonomy).
pub async fn save_autonomy(tx: &TenantTx, settings: &AutonomySettings) -> Result<()> {
    let farm_id = tx.farm_id();
    let categories = serde_json::to_value(&settings.auto_categories)
        .map_err(|e| Error::unexpected(e.to_string()))?;
    let overrides =
        serde_json::to_value(&settings.overrides).map_err(|e| Error::unexpected(e.to_string()))?;
    tx.query_opt(
        "UPDATE farms SET ai_autonomy = $2, ai_auto_categories = $3, ai_record_autonomy = $4 WHERE id = $1 RETURNING id",
        &[
            (&farm_id, Type::UUID),
            (&settings.tier.as_str(), Type::TEXT),
            (&categories, Type::JSONB),
            (&overrides, Type::JSONB),
        ],
    )
    .await?
    .ok_or(Error::NotFound("farm"))?;
    Ok(())
}

#[cfg(test)]
mod tests;
