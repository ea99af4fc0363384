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
mod tests {
    use super::*;

    const TIERS: [Tier; 3] = [Tier::Suggest, Tier::Draft, Tier::Auto];

    /// The design's pseudo-code (`DESIGN.md` "Autonomy"), written out line by line as the
    /// oracle for the table below.
    fn expected(tier: Tier, in_auto: bool, override_: Option<Tier>, t: RecordType) -> Tier {
        let (tier, may_auto) = match override_ {
            Some(o) => (o, o == Tier::Auto),
            None => (tier, tier == Tier::Auto && in_auto),
        };
        if tier == Tier::Suggest {
            return Tier::Suggest;
        }
        if matches!(
            t,
            RecordType::Sale | RecordType::Expense | RecordType::Mortality
        ) {
            return Tier::Draft;
        }
        if may_auto {
            return Tier::Auto;
        }
        Tier::Draft
    }

    #[test]
    fn every_record_type_tier_category_and_override() {
        let mut checked = 0;
        for t in RecordType::ALL {
            for tier in TIERS {
                for in_auto in [false, true] {
                    for override_ in [
                        None,
                        Some(Tier::Suggest),
                        Some(Tier::Draft),
                        Some(Tier::Auto),
                    ] {
                        let settings = AutonomySettings {
                            tier,
                            auto_categories: if in_auto { [t].into() } else { BTreeSet::new() },
                            overrides: override_.map(|o| [(t, o)].into()).unwrap_or_default(),
                        };
                        let got = resolve_autonomy(&settings, t);
                        assert_eq!(
                            got,
                            expected(tier, in_auto, override_, t),
                            "{t} tier={tier:?} in_auto={in_auto} override={override_:?}"
                        );
                        if t.is_financial_or_destructive() {
                            assert_ne!(got, Tier::Auto, "the floor holds for {t}");
                        }
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 9 * 3 * 2 * 4);
    }

    #[test]
    fn suggest_wins_over_the_floor_and_an_auto_override_needs_no_category() {
        let suggest = AutonomySettings {
            tier: Tier::Suggest,
            ..AutonomySettings::default()
        };
        for t in RecordType::ALL {
            assert_eq!(resolve_autonomy(&suggest, t), Tier::Suggest, "{t}");
        }
        let water_auto = AutonomySettings {
            tier: Tier::Draft,
            auto_categories: BTreeSet::new(),
            overrides: [
                (RecordType::Water, Tier::Auto),
                (RecordType::Sale, Tier::Auto),
            ]
            .into(),
        };
        assert_eq!(resolve_autonomy(&water_auto, RecordType::Water), Tier::Auto);
        assert_eq!(
            resolve_autonomy(&water_auto, RecordType::Sale),
            Tier::Draft,
            "the floor"
        );
        let mut sale_suggest = AutonomySettings::default();
        sale_suggest
            .overrides
            .insert(RecordType::Sale, Tier::Suggest);
        assert_eq!(
            resolve_autonomy(&sale_suggest, RecordType::Sale),
            Tier::Suggest
        );
    }

    #[test]
    fn a_recommendation_is_a_draft_unless_the_farm_only_suggests() {
        for (tier, expected) in [
            (Tier::Suggest, Tier::Suggest),
            (Tier::Draft, Tier::Draft),
            (Tier::Auto, Tier::Draft),
        ] {
            let mut s = AutonomySettings {
                tier,
                auto_categories: RecordType::ALL.into(),
                overrides: BTreeMap::new(),
            };
            assert_eq!(resolve_recommendation(&s), expected, "{tier:?}");
            // per-type overrides are about record types, not recommendations
            s.overrides.insert(RecordType::Note, Tier::Suggest);
            assert_eq!(resolve_recommendation(&s), expected, "{tier:?}");
        }
    }

    #[test]
    fn named_cases() {
        let auto_feed = AutonomySettings {
            tier: Tier::Auto,
            auto_categories: [RecordType::FeedUse, RecordType::Sale].into(),
            overrides: BTreeMap::new(),
        };
        assert_eq!(
            resolve_autonomy(&auto_feed, RecordType::FeedUse),
            Tier::Auto
        );
        assert_eq!(
            resolve_autonomy(&auto_feed, RecordType::Sale),
            Tier::Draft,
            "sale in auto categories is still a draft"
        );
        assert_eq!(
            resolve_autonomy(&auto_feed, RecordType::Water),
            Tier::Draft,
            "auto tier, not an auto category"
        );

        let everything_auto = AutonomySettings {
            tier: Tier::Auto,
            auto_categories: RecordType::ALL.into(),
            overrides: RecordType::ALL
                .into_iter()
                .map(|t| (t, Tier::Auto))
                .collect(),
        };
        for t in [RecordType::Sale, RecordType::Expense, RecordType::Mortality] {
            assert_eq!(resolve_autonomy(&everything_auto, t), Tier::Draft);
        }

        let suggest_but_notes_auto = AutonomySettings {
            tier: Tier::Suggest,
            auto_categories: [RecordType::Note].into(),
            overrides: [(RecordType::Note, Tier::Auto)].into(),
        };
        assert_eq!(
            resolve_autonomy(&suggest_but_notes_auto, RecordType::Note),
            Tier::Auto
        );
        assert_eq!(
            resolve_autonomy(&suggest_but_notes_auto, RecordType::Task),
            Tier::Suggest
        );
        assert_eq!(
            resolve_autonomy(&AutonomySettings::default(), RecordType::Note),
            Tier::Draft
        );
    }

    #[test]
    fn changes_are_validated_and_the_floor_cannot_be_lifted() {
        let change = |json: serde_json::Value| {
            serde_json::from_value::<AutonomyChange>(json)
                .unwrap()
                .validate()
        };
        let ok = change(
            serde_json::json!({"tier": "auto", "auto_categories": ["feed_use", "water"],
                                           "overrides": {"note": "suggest", "sale": "draft"}}),
        )
        .unwrap();
        assert_eq!(ok.tier, Some(Tier::Auto));
        assert_eq!(
            ok.auto_categories,
            Some([RecordType::FeedUse, RecordType::Water].into())
        );
        let applied = ok.apply(&AutonomySettings::default());
        assert_eq!(resolve_autonomy(&applied, RecordType::FeedUse), Tier::Auto);
        // nothing given: nothing changes
        let none = change(serde_json::json!({})).unwrap();
        assert_eq!(
            none.apply(&AutonomySettings::default()),
            AutonomySettings::default()
        );
        for t in FLOOR {
            for body in [
                serde_json::json!({"auto_categories": [t.as_str()]}),
                serde_json::json!({"overrides": {t.as_str(): "auto"}}),
            ] {
                match change(body.clone()) {
                    Err(Error::Invalid(f)) => {
                        assert!(f[0].message.contains("floor"), "{body}: {f:?}")
                    }
                    other => panic!("{body}: {other:?}"),
                }
            }
        }
        for (body, field) in [
            (serde_json::json!({"tier": "yolo"}), "tier"),
            (
                serde_json::json!({"auto_categories": ["harvest"]}),
                "auto_categories",
            ),
            (
                serde_json::json!({"overrides": {"note": "maybe"}}),
                "overrides",
            ),
            (
                serde_json::json!({"overrides": {"harvest": "auto"}}),
                "overrides",
            ),
        ] {
            match change(body.clone()) {
                Err(Error::Invalid(f)) => assert_eq!(f[0].field, field, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn settings_read_from_columns() {
        let s = AutonomySettings::from_columns(
            "auto",
            &serde_json::json!(["feed_use"]),
            &serde_json::json!({"note": "suggest"}),
        )
        .unwrap();
        assert_eq!(s.tier, Tier::Auto);
        assert!(s.auto_categories.contains(&RecordType::FeedUse));
        assert_eq!(s.overrides[&RecordType::Note], Tier::Suggest);
        assert!(
            AutonomySettings::from_columns("yolo", &serde_json::json!([]), &serde_json::json!({}))
                .is_err()
        );
        assert!(
            AutonomySettings::from_columns(
                "auto",
                &serde_json::json!(["harvest"]),
                &serde_json::json!({})
            )
            .is_err()
        );
    }
}
