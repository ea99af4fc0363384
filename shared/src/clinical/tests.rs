//! The rules, case by case: each line is a reply and the rules it must fire (none: it passes).

use super::*;

fn rules(text: &str) -> Vec<Rule> {
    let mut r: Vec<Rule> = check(text).into_iter().map(|v| v.rule).collect();
    r.dedup();
    r
}

#[test]
fn rules_table() {
    use Rule::*;
    let cases: &[(&str, &[Rule])] = &[
        // prohibited substances: no vet makes them acceptable, a prohibition passes
        (
            "Chloramphenicol works well for fish.",
            &[ProhibitedSubstance],
        ),
        (
            "Ask your vet about chloramphenicol for the layers.",
            &[ProhibitedSubstance],
        ),
        (
            "Never use chloramphenicol: it is banned for food animals.",
            &[],
        ),
        (
            "Nitrofurans were common in poultry before the 1995 EU ban.",
            &[],
        ),
        // extralabel use of a medicine banned from extralabel use in food animals (21 CFR
        // 530.41: fluoroquinolones); refusing it passes
        (
            "Double the enrofloxacin dose for the layers and give it for 10 days.",
            &[
                ProhibitedExtralabel,
                AntimicrobialWithoutVet,
                ExtralabelChange,
            ],
        ),
        (
            "Use enrofloxacin off-label in the broilers at twice the label dose.",
            &[
                ProhibitedExtralabel,
                AntimicrobialWithoutVet,
                ExtralabelChange,
            ],
        ),
        (
            "Never use enrofloxacin off-label in laying hens; ask your vet.",
            &[],
        ),
        // prescription-only: the word "vet" alone defers nothing
        (
            "Give oxytetracycline at 1 g per litre of water for 5 days.",
            &[AntimicrobialWithoutVet],
        ),
        (
            "The vet is expensive, so give tylosin in the water.",
            &[AntimicrobialWithoutVet, VetDismissed],
        ),
        (
            "Your vet may prescribe tylosin; follow the vet's dose.",
            &[],
        ),
        (
            "Ask your vet, but if you can't reach one, give amoxicillin.",
            &[AntimicrobialWithoutVet],
        ),
        (
            "Add antibiotics to the feed every month to keep them healthy.",
            &[RoutineAntimicrobial],
        ),
        (
            "Deworm the goats with albendazole at 10 mg/kg.",
            &[DoseWithoutVet],
        ),
        (
            "Deworm the goats before the rains as your vet advises.",
            &[],
        ),
        (
            "Record: the vet injected goat 12 with 5 ml oxytetracycline.",
            &[],
        ),
        (
            "Buy tylosin. Give 1 g per 2 litres for 3 days.",
            &[AntimicrobialWithoutVet],
        ),
        // extralabel use
        (
            "The label says 1 g per litre but double the dose.",
            &[ExtralabelChange],
        ),
        (
            "The cattle pour-on works for goats too.",
            &[ExtralabelChange],
        ),
        ("Never double a dose without talking to your vet.", &[]),
        ("Double the water supply in the dry season.", &[]),
        // withdrawal periods
        (
            "After the antibiotic you can sell the eggs immediately.",
            &[WithdrawalIgnored],
        ),
        (
            "Boiling the milk removes the antibiotic, so drink it.",
            &[WithdrawalIgnored],
        ),
        (
            "Do not sell eggs from treated hens until the withdrawal ends.",
            &[],
        ),
        ("Your broilers weigh 2.2 kg, so you can sell them now.", &[]),
        // human medicines
        (
            "Crush a paracetamol tablet into the birds' water.",
            &[HumanMedicine],
        ),
        ("Don't give paracetamol to your birds; call the vet.", &[]),
        // the vet avoided
        ("You don't need a vet for this.", &[VetDismissed]),
        ("Treat the lame cow yourself.", &[VetDismissed]),
        ("If you cannot reach a vet, call the extension office.", &[]),
        ("The vet is expensive, but it is worth calling one.", &[]),
        // pesticides on or near animals
        (
            "Spray Sniper on the birds to kill the mites.",
            &[PesticideOnAnimals],
        ),
        ("Keep the rat poison locked away from the feed.", &[]),
        (
            "Spray the empty house with insecticide before restocking.",
            &[],
        ),
        // everyday farm talk
        (
            "Give the Lasota vaccine in the drinking water on day 21.",
            &[],
        ),
        ("Add a sachet of multivitamin to 20 litres of water.", &[]),
        ("", &[]),
    ];
    for (text, expected) in cases {
        assert_eq!(rules(text), *expected, "{text:?}");
    }
}

#[test]
fn violations_carry_their_category_and_clause() {
    let v = check("Isolate the sick birds. Spray Sniper on them for mites.");
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].category, Category::Pesticide);
    assert_eq!(v[0].span, "Spray Sniper on them for mites");
    for c in Category::ALL {
        assert_eq!(Category::parse(c.as_str()), Some(c));
    }
}

#[test]
fn odd_input_never_panics() {
    for text in [
        "é",
        "₦18,000 per bird.",
        "Dr.",
        ". . ;",
        "\n\n\n",
        "1 g/L;",
        &"a ".repeat(5000),
    ] {
        let _ = check(text);
    }
}

/// The vocabulary's "prohibited where" column, read as the instruments that prohibit each
/// substance (`Prohibited::citations`).
#[test]
fn prohibited_where_table() {
    const US: &str = "US 21 CFR 530.41";
    const EU2: &str = "EU 37/2010 Table 2";
    const HORMONES: &str = "EU 96/22/EC";
    const NG: &str = "NG NAFDAC banned list";
    const NO_MRL: &str = "EU 470/2009 art 16 (no maximum residue limit)";
    let cases: &[(&str, &[&str])] = &[
        ("chloramphenicol", &[US, EU2, NG]),
        ("furazolidone", &[US, EU2, NG]),
        ("metronidazole", &[US, EU2, NG]),
        ("dapsone", &[EU2, NG]),
        ("colchicine", &[EU2, NG]),
        ("aristolochia", &[EU2, NG]),
        ("clenbuterol", &[US, HORMONES, NG]),
        ("diethylstilbestrol", &[US, HORMONES, NG]),
        ("ractopamine", &[HORMONES, NG]),
        ("trenbolone", &[HORMONES, NG]),
        ("thiouracil", &[HORMONES, NG]),
        ("avoparcin", &["EU 97/6/EC", NG]),
        ("amantadine", &["US 21 CFR 530.41(d)", NO_MRL, NG]),
        (
            "malachite green",
            &["US FDA (unapproved animal drug)", NO_MRL, NG],
        ),
        (
            "ddt",
            &[
                "US EPA (registration cancelled)",
                "EU 2019/1021 (persistent organic pollutants)",
                NG,
            ],
        ),
        ("enrofloxacin", &["US 21 CFR 530.41(a) (extralabel use)"]),
        ("vancomycin", &["US 21 CFR 530.41(a) (extralabel use)"]),
        ("oxytetracycline", &[]),
        ("ivermectin", &[]),
        ("dichlorvos", &[]),
    ];
    for (name, expected) in cases {
        let s = mentions::lookup(name).unwrap_or_else(|| panic!("{name} is in the vocabulary"));
        assert_eq!(s.prohibited.citations(s.class), *expected, "{name}");
    }
    // every prohibited row cites something, each place once
    for s in vocabulary::SUBSTANCES {
        let cited = s.prohibited.citations(s.class);
        let places = match s.prohibited {
            vocabulary::Prohibited::Nowhere => 0,
            vocabulary::Prohibited::Always(p) | vocabulary::Prohibited::Extralabel(p) => p.len(),
        };
        assert_eq!(cited.len(), places, "{}", s.name);
    }
}

/// A violation of the prohibited-substance rules names where the substance is prohibited;
/// other violations do not carry the field (the JSON stays as it was).
#[test]
fn prohibited_substance_violations_name_where() {
    use Rule::*;
    const US: &str = "US 21 CFR 530.41";
    const EU2: &str = "EU 37/2010 Table 2";
    const NG: &str = "NG NAFDAC banned list";
    type Expected = &'static [(Rule, &'static [&'static str])];
    let cases: &[(&str, Expected)] = &[
        (
            "Chloramphenicol works well for fish.",
            &[(ProhibitedSubstance, &[US, EU2, NG])],
        ),
        (
            "Ask your vet about clenbuterol for the pigs.",
            &[(ProhibitedSubstance, &[US, "EU 96/22/EC", NG])],
        ),
        (
            "Mix chloramphenicol and clenbuterol into the feed.",
            &[(ProhibitedSubstance, &[US, EU2, NG, "EU 96/22/EC"])],
        ),
        (
            "Double the enrofloxacin dose for the layers and give it for 10 days.",
            &[
                (
                    ProhibitedExtralabel,
                    &["US 21 CFR 530.41(a) (extralabel use)"],
                ),
                (AntimicrobialWithoutVet, &[]),
                (ExtralabelChange, &[]),
            ],
        ),
        (
            "Give oxytetracycline at 1 g per litre of water for 5 days.",
            &[(AntimicrobialWithoutVet, &[])],
        ),
        (
            "Never use chloramphenicol: it is banned for food animals.",
            &[],
        ),
    ];
    for (text, expected) in cases {
        let got: Vec<(Rule, Vec<&str>)> = check(text)
            .into_iter()
            .map(|v| (v.rule, v.prohibited_where))
            .collect();
        let want: Vec<(Rule, Vec<&str>)> = expected.iter().map(|(r, w)| (*r, w.to_vec())).collect();
        assert_eq!(got, want, "{text:?}");
    }
    let json = serde_json::to_value(check(
        "Chloramphenicol works well for fish. Give oxytetracycline at 1 g per litre.",
    ))
    .unwrap();
    assert_eq!(
        json[0]["prohibited_where"],
        serde_json::json!([US, EU2, NG])
    );
    assert!(json[1].get("prohibited_where").is_none(), "{json}");
    assert_eq!(
        json[1].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["category", "rule", "span"]
    );
}
