//! Tests of the offline chat model: sentence parsing, replies and token estimates.

use chrono::NaiveDate;
use serde_json::{Value, json};

use super::*;

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 28).unwrap() // a Saturday
}

#[test]
fn clauses_split_on_and_commas_and_full_stops_but_not_inside_numbers() {
    assert_eq!(
        clauses("used 4 bags of feed and sold 20 crates of eggs for 45,000 naira. 3.5 kg left"),
        [
            "used 4 bags of feed",
            "sold 20 crates of eggs for 45,000 naira",
            "3.5 kg left"
        ]
    );
}

#[test]
fn farm_log_sentences_become_tool_calls() {
    let cases: Vec<(&str, &str, Value)> = vec![
        (
            "3 birds died in pen 2",
            "record_mortality",
            json!({"count": 3, "animal_group": "birds", "location": "pen 2"}),
        ),
        (
            "used 4 bags of feed",
            "record_feed_use",
            json!({"quantity": 4.0, "unit": "bag", "feed_type": "feed"}),
        ),
        (
            "sold 20 crates of eggs for 45,000 naira",
            "record_sale",
            json!({"item": "eggs", "quantity": 20.0, "unit": "crate", "amount_kobo": 4_500_000}),
        ),
        (
            "paid 12,500 for vaccines",
            "record_expense",
            json!({"category": "vaccine", "amount_kobo": 1_250_000, "description": "vaccines"}),
        ),
        (
            "Bought 2 bags of layer mash for 18000 naira",
            "record_expense",
            json!({"category": "feed", "amount_kobo": 1_800_000, "description": "2 bags of layer mash"}),
        ),
        (
            "bought 2 bags of layer mash for N18,000",
            "record_expense",
            json!({"category": "feed", "amount_kobo": 1_800_000, "description": "2 bags of layer mash"}),
        ),
        (
            "bought 2 bags of layer mash for ₦18,000",
            "record_expense",
            json!({"category": "feed", "amount_kobo": 1_800_000, "description": "2 bags of layer mash"}),
        ),
        (
            "bought 2 bags of layer mash for 18k naira",
            "record_expense",
            json!({"category": "feed", "amount_kobo": 1_800_000, "description": "2 bags of layer mash"}),
        ),
        (
            "sold 20 crates of eggs for ₦45,000",
            "record_sale",
            json!({"item": "eggs", "quantity": 20.0, "unit": "crate", "amount_kobo": 4_500_000}),
        ),
        (
            "pond 3 weights average 350 g",
            "record_weight",
            json!({"average_grams": 350.0, "location": "pond 3"}),
        ),
        (
            "coughing in house B",
            "record_symptom",
            json!({"symptoms": "coughing", "location": "house B"}),
        ),
        (
            "remind me to vaccinate on Monday",
            "record_task",
            json!({"title": "vaccinate", "due_on": "2026-11-30"}),
        ),
        (
            "gave 200 litres of water in house A",
            "record_water",
            json!({"litres": 200.0, "location": "house A"}),
        ),
    ];
    for (sentence, tool, input) in cases {
        let (name, got) = parse_clause(sentence, today()).unwrap_or_else(|| panic!("{sentence}"));
        assert_eq!(name, tool, "{sentence}");
        assert_eq!(got, input, "{sentence}");
    }
    assert!(parse_clause("what is the weather like", today()).is_none());
}

#[test]
fn one_message_may_hold_several_records() {
    let calls = parse_message(
        "3 birds died in pen 2, used 4 bags of feed and coughing in house B",
        today(),
    );
    let names: Vec<&str> = calls.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "record_mortality",
            "record_feed_use",
            "record_symptom",
            "create_recommendation"
        ]
    );
}

#[test]
fn every_parsed_call_passes_its_record_schema() {
    use crate::records::{RecordType, validate_payload};
    for sentence in [
        "3 birds died in pen 2",
        "used 4 bags of feed",
        "sold 20 crates of eggs for 45,000 naira",
        "paid 12,500 for vaccines",
        "pond 3 weights average 350 g",
        "coughing in house B",
        "remind me to vaccinate on Monday",
    ] {
        let (name, input) = parse_clause(sentence, today()).unwrap();
        let t = RecordType::parse(name.trim_start_matches("record_")).unwrap();
        validate_payload(t, &input, today()).unwrap_or_else(|e| panic!("{sentence}: {e}"));
    }
}

/// Counts are whole numbers: a fraction is cut to its whole part, a count no `i64` holds is
/// passed on as read and the record schema refuses it.
#[test]
fn counts_are_whole_or_refused() {
    use crate::records::{RecordType, validate_payload};
    let cases: [(&str, RecordType, &str, Option<i64>); 4] = [
        (
            "3 birds died in pen 2",
            RecordType::Mortality,
            "count",
            Some(3),
        ),
        ("2.5 birds died", RecordType::Mortality, "count", Some(2)),
        (
            "99999999999999999999 birds died",
            RecordType::Mortality,
            "count",
            None,
        ),
        (
            "4 birds coughing in house B",
            RecordType::Symptom,
            "affected_count",
            Some(4),
        ),
    ];
    for (sentence, t, field, want) in cases {
        let (_, input) = parse_clause(sentence, today()).unwrap();
        assert_eq!(input[field].as_i64(), want, "{sentence}: {input}");
        assert_eq!(
            validate_payload(t, &input, today()).is_ok(),
            want.is_some(),
            "{sentence}: {input}"
        );
    }
}

#[test]
fn odd_text_never_panics_and_only_yields_valid_tool_names() {
    let odd = [
        "",
        " ",
        "and and and",
        ",,,..",
        "sold",
        "sold 5",
        "sold 5 crates of",
        "paid for",
        "used 3",
        "3 died",
        "died in",
        "remind me to",
        "remind me to on monday",
        "pond weighs average",
        "average 2kg",
        "₦45,000 sold 20 crätes of ęggs for ₦45,000 naira",
        "coughing in",
        "ñ in ñ",
        "note",
        "note: ",
        "💀 3 birds died in pen 💀",
        "used 4 bags of feed in house 2 and 1.5 tonnes of feed",
    ];
    for text in odd {
        for (name, input) in parse_message(text, today()) {
            assert!(
                crate::chat::tools::parse_tool(&name).is_some(),
                "{text}: {name}"
            );
            assert!(input.is_object(), "{text}");
        }
    }
}

#[tokio::test]
async fn questions_are_answered_from_the_knowledge_and_say_they_are_offline() {
    let request = ChatRequest {
        system: format!(
            "You help.\n{KNOWLEDGE_MARKER}\n- Layers need 16 hours of light.\n- Catfish ponds need aeration.\n"
        ),
        messages: vec![Message::user_text(
            "How many hours of light do layers need?",
        )],
        tools: vec![],
        tool_choice: None,
        max_tokens: 100,
    };
    let r = OfflineChat.converse(&request).await.unwrap();
    let text = r.message.text();
    assert!(text.starts_with(PREFIX), "{text}");
    assert!(text.contains("16 hours"), "{text}");
    assert_eq!(r.stop_reason, StopReason::EndTurn);
    assert!(r.usage.input_tokens > 0 && r.usage.input_tokens <= request.input_token_bound());
    assert!(r.usage.output_tokens > 0 && r.usage.output_tokens <= 100);
}
