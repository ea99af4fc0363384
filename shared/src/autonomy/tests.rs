//! Tests of the autonomy decider (table-driven): every record type, tier, category and
//! override, and changes to the settings.

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
