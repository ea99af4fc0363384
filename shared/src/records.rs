//! Farm records the AI may write: their types, payload schemas and validation.
//!
//! One table of field specs per record type drives both [`validate_payload`] (what the
//! executor and the confirm path accept, as a [`ValidatedPayload`], the only payload
//! [`insert_record`] and a draft take) and [`json_schema`] (what the model is told), so the
//! two cannot drift apart. The database re-checks every range with its own CHECKs.
use serde::{Deserialize, Serialize};

mod insert;
mod payload;
#[cfg(test)]
mod tests;
mod validate;

pub use insert::{Provenance, Source, insert_record};
pub use payload::ValidatedPayload;
pub use validate::{json_schema, validate_payload};

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
