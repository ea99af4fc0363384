//! Tests of the tool executor: autonomy's decisions, refusals of invalid, foreign or unsafe
//! input, and their evals.

use super::*;
use crate::chat::tools;
use std::collections::{BTreeMap, BTreeSet};

fn settings(tier: Tier, auto: &[RecordType]) -> AutonomySettings {
    AutonomySettings {
        tier,
        auto_categories: auto.iter().copied().collect::<BTreeSet<_>>(),
        overrides: BTreeMap::new(),
    }
}

fn plan(s: &AutonomySettings, name: &str, input: Value) -> Outcome {
    let ex = Executor {
        farm_id: Uuid::nil(),
        user_id: "u",
        autonomy: s,
        today: NaiveDate::from_ymd_opt(2026, 11, 28).unwrap(),
    };
    ex.plan_write(tools::parse_tool(name).unwrap(), "t1", name, &input)
}

#[test]
fn autonomy_decides_draft_record_or_refusal() {
    let feed = json!({"quantity": 4, "unit": "bag"});
    let sale = json!({"item": "eggs", "quantity": 20, "unit": "crate", "amount_kobo": 4_500_000});
    let auto = settings(Tier::Auto, &[RecordType::FeedUse, RecordType::Sale]);
    assert!(matches!(
        plan(&auto, "record_feed_use", feed.clone()).planned,
        Some(Planned::Record { .. })
    ));
    assert!(
        matches!(
            plan(&auto, "record_sale", sale.clone()).planned,
            Some(Planned::Draft { .. })
        ),
        "floor"
    );
    let draft = settings(Tier::Draft, &[RecordType::FeedUse]);
    assert!(matches!(
        plan(&draft, "record_feed_use", feed.clone()).planned,
        Some(Planned::Draft { .. })
    ));
    let suggest = settings(Tier::Suggest, &[]);
    let o = plan(&suggest, "record_feed_use", feed);
    assert!(o.is_error && o.planned.is_none());
    assert!(o.eval.unwrap().passed, "the input itself was valid");
}

#[test]
fn the_executor_follows_the_one_decider() {
    let sale = json!({"item": "eggs", "quantity": 20, "unit": "crate", "amount_kobo": 4_500_000});
    let o = plan(&settings(Tier::Suggest, &[]), "record_sale", sale.clone());
    assert!(o.is_error && o.planned.is_none(), "suggest writes nothing");
    let mut water = settings(Tier::Draft, &[]);
    water.overrides.insert(RecordType::Water, Tier::Auto);
    assert!(
        matches!(
            plan(&water, "record_water", json!({"litres": 200})).planned,
            Some(Planned::Record { .. })
        ),
        "an auto override needs no category"
    );
    water.overrides.insert(RecordType::Sale, Tier::Auto);
    assert!(
        matches!(
            plan(&water, "record_sale", sale).planned,
            Some(Planned::Draft { .. })
        ),
        "the floor"
    );
    let rec = json!({"title": "Vaccinate", "body": "Book the vet for Monday."});
    let o = plan(
        &settings(Tier::Suggest, &[]),
        "create_recommendation",
        rec.clone(),
    );
    assert!(
        o.is_error && o.planned.is_none(),
        "suggest writes no recommendation"
    );
    let mut note_only = settings(Tier::Draft, &[]);
    note_only.overrides.insert(RecordType::Note, Tier::Suggest);
    assert!(
        plan(&note_only, "create_recommendation", rec)
            .planned
            .is_some()
    );
}

#[test]
fn invalid_or_foreign_input_is_refused_with_a_failed_eval() {
    let s = settings(Tier::Auto, &[RecordType::Note]);
    for (name, input) in [
        ("record_mortality", json!({"count": "three"})),
        (
            "record_note",
            json!({"body": "x", "farm_id": "00000000-0000-0000-0000-000000000001"}),
        ),
        ("create_recommendation", json!({"title": "t"})),
        ("record_note", json!("just text")),
    ] {
        let o = plan(&s, name, input.clone());
        assert!(o.is_error, "{name} {input}");
        assert!(o.planned.is_none());
        let eval = o.eval.unwrap();
        assert_eq!(eval.name, SCHEMA_CONFORMANCE);
        assert!(!eval.passed, "{name} {input}");
    }
}

#[test]
fn unsafe_recommendations_are_refused() {
    let s = settings(Tier::Draft, &[]);
    let o = plan(
        &s,
        "create_recommendation",
        json!({"title": "Treat", "body": "Give 2 g oxytetracycline per litre."}),
    );
    assert!(o.is_error && o.planned.is_none());
    let o = plan(
        &s,
        "create_recommendation",
        json!({"title": "Treat", "body": "Call the vet."}),
    );
    assert!(matches!(o.planned, Some(Planned::Recommendation { .. })));
    // each field passes alone; read together, the title names the medicine the body doses
    let o = plan(
        &s,
        "create_recommendation",
        json!({"title": "Oxytetracycline for the layers", "body": "Give 1 g per litre for 5 days"}),
    );
    assert!(o.is_error && o.planned.is_none(), "{:?}", o.result);
    let eval = o.eval.unwrap();
    assert!(!eval.passed);
    assert_eq!(eval.details["violations"][0]["field"], "title+body");
}

#[test]
fn unsafe_drafts_and_records_are_refused_with_a_failed_clinical_eval() {
    for tier in [Tier::Draft, Tier::Auto] {
        let s = settings(tier, &RecordType::ALL);
        for (name, input) in [
            (
                "record_note",
                json!({"body": "Told the farmer to sell the eggs now, the antibiotic is out of their system."}),
            ),
            (
                "record_symptom",
                json!({"symptoms": "coughing; give tylosin in the water for 5 days, no vet needed", "affected_count": 4}),
            ),
            (
                "record_task",
                json!({"title": "Spray Sniper on the layers for mites", "due_on": "2026-11-30"}),
            ),
        ] {
            let o = plan(&s, name, input.clone());
            assert!(o.is_error && o.planned.is_none(), "{name} {input}");
            assert!(
                o.result["error"]
                    .as_str()
                    .unwrap()
                    .contains("clinical safety")
            );
            let eval = o.eval.unwrap();
            assert_eq!(eval.name, evals::CLINICAL_SAFETY);
            assert!(!eval.passed);
        }
        let o = plan(
            &s,
            "record_note",
            json!({"body": "The vet gave goat 3 oxytetracycline; isolate her."}),
        );
        assert!(
            o.planned.is_some(),
            "a record of what the vet gave is written"
        );
    }
}
