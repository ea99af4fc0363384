//! The flags as the shared crate's values, checked by the same rules as the API and the
//! database; the shared crate's errors for an operator's eyes.

use anyhow::{Context, Result, bail};
use farmops::{autonomy, credits};

/// The grant's flags as a lot, checked by the same rules as the database's.
#[allow(clippy::too_many_arguments)]
pub(crate) fn new_lot(
    amount: i64,
    reason: &str,
    actor: &str,
    category: &str,
    priority: i32,
    effective_at: Option<&str>,
    expires_at: Option<&str>,
    source: &str,
    idempotency_key: Option<String>,
) -> Result<credits::NewLot> {
    let Some(category) = credits::LotCategory::parse(category) else {
        bail!("--category must be paid or promotional, not {category:?}");
    };
    let source = match credits::LotSource::parse(source) {
        Some(s @ (credits::LotSource::Operator | credits::LotSource::Promotion)) => s,
        _ => bail!("--source must be operator or promotion, not {source:?}"),
    };
    let time = |flag: &str, v: Option<&str>| -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        v.map(|v| {
            chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| t.to_utc())
                .with_context(|| format!("{flag} must be an RFC 3339 time, not {v:?}"))
        })
        .transpose()
    };
    let mut lot = credits::NewLot::operator(amount, actor, reason);
    lot.category = category;
    lot.priority = priority;
    lot.effective_at = time("--effective-at", effective_at)?;
    lot.expires_at = time("--expires-at", expires_at)?;
    lot.source = source;
    if let Some(key) = idempotency_key {
        lot.idempotency_key = key;
    }
    lot.validate(chrono::Utc::now()).map_err(explain)?;
    Ok(lot)
}

/// The flags as an [`autonomy::AutonomyChange`], validated by the same rules as the API's
/// `PUT /farms/{farm_id}/settings/autonomy` (known names; the floor cannot be lifted).
pub(crate) fn parse_autonomy(
    tier: &str,
    categories: &[String],
    overrides: &[String],
) -> Result<autonomy::AutonomySettings> {
    let mut pairs = std::collections::BTreeMap::new();
    for o in overrides {
        let (t, tier) = o
            .split_once('=')
            .with_context(|| format!("--override takes type=tier, got {o:?}"))?;
        pairs.insert(t.trim().to_string(), tier.trim().to_string());
    }
    let change = autonomy::AutonomyChange {
        tier: Some(tier.to_string()),
        auto_categories: Some(
            categories
                .iter()
                .filter(|c| !c.trim().is_empty())
                .cloned()
                .collect(),
        ),
        overrides: Some(pairs),
    };
    let valid = change.validate().map_err(explain)?;
    Ok(valid.apply(&autonomy::AutonomySettings::default()))
}

/// `--daily` and `--monthly` as the API's body: a number, or `none` (null: remove the cap).
pub(crate) fn parse_budget(
    daily: Option<&str>,
    monthly: Option<&str>,
) -> Result<farmops::farm::budgets::BudgetChange> {
    let mut body = serde_json::Map::new();
    for (name, value) in [("daily", daily), ("monthly", monthly)] {
        let Some(v) = value else { continue };
        let v = match v {
            "none" => serde_json::Value::Null,
            n => match n.parse::<i64>() {
                Ok(n) => n.into(),
                Err(_) => bail!("--{name} must be a whole number of credits or none, not {n:?}"),
            },
        };
        body.insert(name.to_string(), v);
    }
    if body.is_empty() {
        bail!("name --daily and/or --monthly (a number of credits, or none to remove the cap)");
    }
    farmops::farm::budgets::BudgetChange::parse(&serde_json::Value::Object(body)).map_err(explain)
}

/// The shared crate's error with its cause chain, for an operator's eyes.
pub(crate) fn explain(e: farmops::Error) -> anyhow::Error {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    anyhow::anyhow!(message)
}
