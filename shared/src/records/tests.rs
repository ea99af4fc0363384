//! Tests of record types, payload validation and the schema the model is told (table-driven).

use chrono::NaiveDate;
use serde_json::{Value, json};

use super::*;
use crate::error::Error;

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
        assert_eq!(out.as_map()["occurred_on"], json!("2026-11-28"), "{t}");
        assert_eq!(out.record_type(), t);
        assert_eq!(serde_json::to_value(&out).unwrap(), out.to_value(), "{t}");
    }
    let out = validate_payload(
        RecordType::Mortality,
        &json!({"count": 3, "location": " pen 2 "}),
        today(),
    )
    .unwrap();
    assert_eq!(out.as_map()["location"], json!("pen 2"));
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
