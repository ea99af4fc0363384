//! Farm records the AI may write: their types, payload schemas and validation.
//!
//! One table of field specs per record type drives both [`validate_payload`] (what the
//! executor and the confirm path accept) and [`json_schema`] (what the model is told), so the
//! two cannot drift apart. The database re-checks every range with its own CHECKs.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::{
    db::{TenantTx, Type},
    error::{Error, FieldError, Result},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordType {
    Mortality,
    FeedUse,
    Sale,
    Expense,
    Water,
    Weight,
    Symptom,
    Note,
    Task,
}

impl RecordType {
    pub const ALL: [RecordType; 9] = [
        RecordType::Mortality,
        RecordType::FeedUse,
        RecordType::Sale,
        RecordType::Expense,
        RecordType::Water,
        RecordType::Weight,
        RecordType::Symptom,
        RecordType::Note,
        RecordType::Task,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::Mortality => "mortality",
            RecordType::FeedUse => "feed_use",
            RecordType::Sale => "sale",
            RecordType::Expense => "expense",
            RecordType::Water => "water",
            RecordType::Weight => "weight",
            RecordType::Symptom => "symptom",
            RecordType::Note => "note",
            RecordType::Task => "task",
        }
    }

    pub fn parse(s: &str) -> Option<RecordType> {
        RecordType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The table holding records of this type (mirrors `record_table()` in the schema).
    pub fn table(self) -> &'static str {
        match self {
            RecordType::Mortality => "mortality_events",
            RecordType::FeedUse => "feed_logs",
            RecordType::Sale => "sales",
            RecordType::Expense => "expenses",
            RecordType::Water => "water_logs",
            RecordType::Weight => "weight_records",
            RecordType::Symptom => "symptom_reports",
            RecordType::Note => "notes",
            RecordType::Task => "tasks",
        }
    }

    /// Money or destruction: always a draft for a human, never written by the AI directly.
    pub fn is_financial_or_destructive(self) -> bool {
        matches!(
            self,
            RecordType::Sale | RecordType::Expense | RecordType::Mortality
        )
    }

    /// What the record is, in the farm's words (tool descriptions).
    pub fn description(self) -> &'static str {
        match self {
            RecordType::Mortality => {
                "Animals that died: how many, which group or pen, and the cause if known."
            }
            RecordType::FeedUse => {
                "Feed used: quantity with its unit (kg, g, bag, tonne), feed type and where."
            }
            RecordType::Sale => {
                "A sale: item, quantity and unit, total amount in kobo (1 naira = 100 kobo), buyer."
            }
            RecordType::Expense => {
                "Money spent: category, amount in kobo (1 naira = 100 kobo), what it was for."
            }
            RecordType::Water => "Water used, in litres, and where.",
            RecordType::Weight => {
                "A weighing: average weight in grams, sample size, which group or pond."
            }
            RecordType::Symptom => {
                "Signs of illness seen: symptoms, how many animals, severity, where."
            }
            RecordType::Note => "A free-text note about the farm.",
            RecordType::Task => "A task to do, with an optional due date.",
        }
    }

    pub fn fields(self) -> &'static [Field] {
        match self {
            RecordType::Mortality => MORTALITY,
            RecordType::FeedUse => FEED_USE,
            RecordType::Sale => SALE,
            RecordType::Expense => EXPENSE,
            RecordType::Water => WATER,
            RecordType::Weight => WEIGHT,
            RecordType::Symptom => SYMPTOM,
            RecordType::Note => NOTE,
            RecordType::Task => TASK,
        }
    }
}

impl std::fmt::Display for RecordType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

// Field specs per record type (mirrors the columns and CHECKs of the record tables).
const fn f(name: &'static str, kind: Kind, required: bool) -> Field {
    Field {
        name,
        kind,
        required,
    }
}
const OCCURRED: Field = f("occurred_on", Kind::Date, false);
const GROUP: Field = f("animal_group", Kind::Text { min: 1, max: 100 }, false);
const LOCATION: Field = f("location", Kind::Text { min: 1, max: 100 }, false);
const MORTALITY: &[Field] = &[
    f(
        "count",
        Kind::Int {
            min: 1,
            max: 1_000_000,
        },
        true,
    ),
    GROUP,
    LOCATION,
    f("cause", Kind::Text { min: 1, max: 500 }, false),
    OCCURRED,
];
const FEED_USE: &[Field] = &[
    f("quantity", Kind::Decimal { max: 1_000_000.0 }, true),
    f("unit", Kind::Enum(&["kg", "g", "bag", "tonne"]), true),
    f("feed_type", Kind::Text { min: 1, max: 100 }, false),
    LOCATION,
    OCCURRED,
];
const SALE: &[Field] = &[
    f("item", Kind::Text { min: 1, max: 100 }, true),
    f("quantity", Kind::Decimal { max: 1_000_000.0 }, true),
    f("unit", Kind::Text { min: 1, max: 30 }, true),
    f("amount_kobo", Kind::Kobo, true),
    f("buyer", Kind::Text { min: 1, max: 100 }, false),
    OCCURRED,
];
const EXPENSE: &[Field] = &[
    f(
        "category",
        Kind::Enum(&[
            "feed",
            "medication",
            "vaccine",
            "veterinary",
            "labour",
            "utilities",
            "equipment",
            "transport",
            "other",
        ]),
        true,
    ),
    f("amount_kobo", Kind::Kobo, true),
    f("description", Kind::Text { min: 1, max: 500 }, true),
    f("vendor", Kind::Text { min: 1, max: 100 }, false),
    OCCURRED,
];
const WATER: &[Field] = &[
    f("litres", Kind::Decimal { max: 10_000_000.0 }, true),
    LOCATION,
    OCCURRED,
];
const WEIGHT: &[Field] = &[
    f("average_grams", Kind::Decimal { max: 2_000_000.0 }, true),
    f(
        "sample_size",
        Kind::Int {
            min: 1,
            max: 1_000_000,
        },
        false,
    ),
    GROUP,
    LOCATION,
    OCCURRED,
];
const SYMPTOM: &[Field] = &[
    f("symptoms", Kind::Text { min: 1, max: 1000 }, true),
    f(
        "affected_count",
        Kind::Int {
            min: 1,
            max: 1_000_000,
        },
        false,
    ),
    f(
        "severity",
        Kind::Enum(&["mild", "moderate", "severe"]),
        false,
    ),
    GROUP,
    LOCATION,
    OCCURRED,
];
const NOTE: &[Field] = &[f("body", Kind::Text { min: 1, max: 4000 }, true), OCCURRED];
const TASK: &[Field] = &[
    f("title", Kind::Text { min: 1, max: 200 }, true),
    f("due_on", Kind::FutureDate, false),
    OCCURRED,
];

#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
}

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A whole number in range.
    Int {
        min: i64,
        max: i64,
    },
    /// A positive number (3 decimal places are kept), at most `max`.
    Decimal {
        max: f64,
    },
    /// Money: a positive whole number of kobo, never a fraction.
    Kobo,
    /// Trimmed text of `min..=max` characters.
    Text {
        min: usize,
        max: usize,
    },
    Enum(&'static [&'static str]),
    /// `YYYY-MM-DD`, not in the future (an event that happened).
    Date,
    /// `YYYY-MM-DD`, any date in a sane range (a due date).
    FutureDate,
}

/// Largest amount accepted: one trillion naira, in kobo.
pub const MAX_KOBO: i64 = 100_000_000_000_000;

/// Validates `payload` for `record_type` and returns it normalised (texts trimmed, absent
/// optional fields omitted, `occurred_on` defaulted to `today`). Unknown fields are refused.
pub fn validate_payload(
    record_type: RecordType,
    payload: &Value,
    today: NaiveDate,
) -> Result<Map<String, Value>> {
    let Some(object) = payload.as_object() else {
        return Err(Error::invalid("payload", "must be a JSON object"));
    };
    let fields = record_type.fields();
    let mut errors = Vec::new();
    for key in object.keys() {
        if !fields.iter().any(|f| f.name == key) {
            errors.push(FieldError::new(
                key.as_str(),
                format!("is not a field of a {record_type} record"),
            ));
        }
    }
    let mut out = Map::new();
    for field in fields {
        match object.get(field.name) {
            None | Some(Value::Null) => {
                if field.required {
                    errors.push(FieldError::new(field.name, "is required"));
                }
            }
            Some(value) => match check(field.kind, value, today) {
                Ok(v) => {
                    out.insert(field.name.to_string(), v);
                }
                Err(message) => errors.push(FieldError::new(field.name, message)),
            },
        }
    }
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    out.entry("occurred_on")
        .or_insert_with(|| json!(today.to_string()));
    Ok(out)
}

fn check(kind: Kind, value: &Value, today: NaiveDate) -> std::result::Result<Value, String> {
    match kind {
        Kind::Int { min, max } => match value.as_i64() {
            Some(n) if (min..=max).contains(&n) => Ok(json!(n)),
            Some(_) => Err(format!("must be between {min} and {max}")),
            None => Err("must be a whole number".into()),
        },
        Kind::Decimal { max } => match value.as_f64() {
            Some(x) if x.is_finite() && x > 0.0 && x <= max => {
                Ok(json!((x * 1000.0).round() / 1000.0))
            }
            Some(_) => Err(format!("must be greater than 0 and at most {max}")),
            None => Err("must be a number".into()),
        },
        Kind::Kobo => match value.as_i64() {
            Some(n) if n > 0 && n <= MAX_KOBO => Ok(json!(n)),
            Some(_) => Err(format!("must be between 1 and {MAX_KOBO} kobo")),
            None => Err("must be a whole number of kobo (1 naira = 100 kobo)".into()),
        },
        Kind::Text { min, max } => match value.as_str().map(str::trim) {
            Some(s) if (min..=max).contains(&s.chars().count()) => Ok(json!(s)),
            Some(_) => Err(format!("must be {min} to {max} characters")),
            None => Err("must be text".into()),
        },
        Kind::Enum(options) => match value.as_str() {
            Some(s) if options.contains(&s) => Ok(json!(s)),
            _ => Err(format!("must be one of: {}", options.join(", "))),
        },
        Kind::Date | Kind::FutureDate => {
            let date = value
                .as_str()
                .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
                .ok_or("must be a date YYYY-MM-DD")?;
            let earliest = NaiveDate::from_ymd_opt(2000, 1, 1).expect("valid date");
            let latest = match kind {
                Kind::Date => today.succ_opt().unwrap_or(today), // a day of slack for time zones
                _ => NaiveDate::from_ymd_opt(2100, 12, 31).expect("valid date"),
            };
            if date < earliest || date > latest {
                return Err(format!("must be between {earliest} and {latest}"));
            }
            Ok(json!(date.to_string()))
        }
    }
}

/// The JSON schema of a record type's payload (sent to the model as a tool input schema).
pub fn json_schema(record_type: RecordType) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for field in record_type.fields() {
        let schema = match field.kind {
            Kind::Int { min, max } => json!({"type": "integer", "minimum": min, "maximum": max}),
            Kind::Decimal { max } => {
                json!({"type": "number", "exclusiveMinimum": 0, "maximum": max})
            }
            Kind::Kobo => json!({"type": "integer", "minimum": 1, "maximum": MAX_KOBO,
                                 "description": "amount in kobo (1 naira = 100 kobo)"}),
            Kind::Text { min, max } => {
                json!({"type": "string", "minLength": min, "maxLength": max})
            }
            Kind::Enum(options) => json!({"type": "string", "enum": options}),
            Kind::Date | Kind::FutureDate => json!({"type": "string", "format": "date"}),
        };
        properties.insert(field.name.to_string(), schema);
        if field.required {
            required.push(field.name);
        }
    }
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

/// Where a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Manual,
    AiAuto,
    AiDraft,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Manual => "manual",
            Source::AiAuto => "ai_auto",
            Source::AiDraft => "ai_draft",
        }
    }
}

/// Who and what produced a record.
#[derive(Debug, Clone)]
pub struct Provenance<'a> {
    pub source: Source,
    pub created_by: &'a str,
    pub ai_run_id: Option<Uuid>,
    pub draft_id: Option<Uuid>,
    pub confirmed_by: Option<&'a str>,
}

/// Writes one record from a payload that passed [`validate_payload`]; returns the stored row
/// as JSON. The record's columns come from the payload through `jsonb_populate_record`, so
/// the database's own types and CHECKs apply; provenance is filled here, never from payload.
pub async fn insert_record(
    tx: &TenantTx,
    record_type: RecordType,
    payload: &Map<String, Value>,
    provenance: &Provenance<'_>,
) -> Result<Value> {
    let columns: Vec<&str> = record_type
        .fields()
        .iter()
        .map(|f| f.name)
        .filter(|name| payload.contains_key(*name))
        .collect();
    let list = columns.join(", ");
    let select = columns
        .iter()
        .map(|c| format!("p.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "INSERT INTO {table} (farm_id, source, created_by, ai_run_id, draft_id, confirmed_by, confirmed_at, {list})
         SELECT $1, $2, $3, $4, $5, $6, CASE WHEN $6 IS NULL THEN NULL ELSE now() END, {select}
           FROM jsonb_populate_record(NULL::{table}, $7) AS p
         RETURNING to_jsonb({table}.*)",
        table = record_type.table(),
    );
    let farm_id = tx.farm_id();
    let payload = Value::Object(payload.clone());
    let row = tx
        .query_one(
            &sql,
            &[
                (&farm_id, Type::UUID),
                (&provenance.source.as_str(), Type::TEXT),
                (&provenance.created_by, Type::TEXT),
                (&provenance.ai_run_id, Type::UUID),
                (&provenance.draft_id, Type::UUID),
                (&provenance.confirmed_by, Type::TEXT),
                (&payload, Type::JSONB),
            ],
        )
        .await?;
    Ok(row.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 28).unwrap()
    }

    fn fields_of(err: Error) -> Vec<String> {
        match err {
            Error::Invalid(fields) => fields.into_iter().map(|f| f.field).collect(),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn names_round_trip_and_match_the_schema_list() {
        for t in RecordType::ALL {
            assert_eq!(RecordType::parse(t.as_str()), Some(t));
            assert_eq!(serde_json::to_value(t).unwrap(), json!(t.as_str()));
        }
        assert_eq!(RecordType::parse("harvest"), None);
        let names: Vec<&str> = RecordType::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(
            names,
            [
                "mortality",
                "feed_use",
                "sale",
                "expense",
                "water",
                "weight",
                "symptom",
                "note",
                "task"
            ]
        );
    }

    #[test]
    fn valid_payloads_are_normalised() {
        let cases = [
            (
                RecordType::Mortality,
                json!({"count": 3, "location": " pen 2 "}),
            ),
            (RecordType::FeedUse, json!({"quantity": 4, "unit": "bag"})),
            (
                RecordType::Sale,
                json!({"item": "eggs", "quantity": 20, "unit": "crate", "amount_kobo": 4_500_000}),
            ),
            (
                RecordType::Expense,
                json!({"category": "vaccine", "amount_kobo": 1_250_000, "description": "vaccines"}),
            ),
            (RecordType::Water, json!({"litres": 250.5})),
            (
                RecordType::Weight,
                json!({"average_grams": 350, "location": "pond 3"}),
            ),
            (
                RecordType::Symptom,
                json!({"symptoms": "coughing", "location": "house B"}),
            ),
            (RecordType::Note, json!({"body": "fence mended"})),
            (
                RecordType::Task,
                json!({"title": "vaccinate", "due_on": "2026-11-30"}),
            ),
        ];
        for (t, payload) in cases {
            let out = validate_payload(t, &payload, today()).unwrap_or_else(|e| panic!("{t}: {e}"));
            assert_eq!(out["occurred_on"], json!("2026-11-28"), "{t}");
        }
        let out = validate_payload(
            RecordType::Mortality,
            &json!({"count": 3, "location": " pen 2 "}),
            today(),
        )
        .unwrap();
        assert_eq!(out["location"], json!("pen 2"));
    }

    #[test]
    fn invalid_payloads_name_every_bad_field() {
        let cases: Vec<(RecordType, Value, Vec<&str>)> = vec![
            (RecordType::Mortality, json!({}), vec!["count"]),
            (RecordType::Mortality, json!({"count": 0}), vec!["count"]),
            (RecordType::Mortality, json!({"count": 2.5}), vec!["count"]),
            (
                RecordType::Mortality,
                json!({"count": "three"}),
                vec!["count"],
            ),
            (
                RecordType::FeedUse,
                json!({"quantity": -1, "unit": "sack"}),
                vec!["quantity", "unit"],
            ),
            (
                RecordType::Sale,
                json!({"item": "eggs", "quantity": 1, "unit": "crate", "amount_kobo": 450.5}),
                vec!["amount_kobo"],
            ),
            (
                RecordType::Sale,
                json!({"item": "eggs", "quantity": 1, "unit": "crate", "amount_kobo": 0}),
                vec!["amount_kobo"],
            ),
            (
                RecordType::Expense,
                json!({"category": "bribes", "amount_kobo": 5, "description": "x"}),
                vec!["category"],
            ),
            (
                RecordType::Expense,
                json!({"category": "feed", "amount_kobo": MAX_KOBO + 1, "description": "x"}),
                vec!["amount_kobo"],
            ),
            (RecordType::Note, json!({"body": "   "}), vec!["body"]),
            (
                RecordType::Note,
                json!({"body": "x", "farm_id": "someone-else"}),
                vec!["farm_id"],
            ),
            (
                RecordType::Mortality,
                json!({"count": 1, "occurred_on": "2027-01-05"}),
                vec!["occurred_on"],
            ),
            (
                RecordType::Mortality,
                json!({"count": 1, "occurred_on": "28/11/2026"}),
                vec!["occurred_on"],
            ),
            (
                RecordType::Task,
                json!({"title": "x", "due_on": "2200-01-01"}),
                vec!["due_on"],
            ),
            (
                RecordType::Water,
                json!({"litres": f64::MAX}),
                vec!["litres"],
            ),
        ];
        for (t, payload, expected) in cases {
            let err = validate_payload(t, &payload, today()).expect_err(&format!("{t} {payload}"));
            let mut got = fields_of(err);
            got.sort();
            let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
            want.sort();
            assert_eq!(got, want, "{t} {payload}");
        }
        assert!(validate_payload(RecordType::Note, &json!(["body"]), today()).is_err());
    }

    #[test]
    fn schema_lists_exactly_the_validated_fields() {
        for t in RecordType::ALL {
            let schema = json_schema(t);
            let props = schema["properties"].as_object().unwrap();
            assert_eq!(props.len(), t.fields().len(), "{t}");
            for f in t.fields() {
                assert!(props.contains_key(f.name), "{t}.{}", f.name);
                assert_eq!(
                    schema["required"]
                        .as_array()
                        .unwrap()
                        .contains(&json!(f.name)),
                    f.required
                );
            }
            assert_eq!(schema["additionalProperties"], json!(false));
        }
    }

    #[test]
    fn only_sale_expense_and_mortality_are_financial_or_destructive() {
        let floor: Vec<RecordType> = RecordType::ALL
            .into_iter()
            .filter(|t| t.is_financial_or_destructive())
            .collect();
        assert_eq!(
            floor,
            [RecordType::Mortality, RecordType::Sale, RecordType::Expense]
        );
    }
}
