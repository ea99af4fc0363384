//! Tests of the distill job's pure parts: the fact classification table and the config.

use std::time::Duration;

use super::*;

#[test]
fn classify_table() {
    let t = 0.92;
    let cases = [
        (true, false, None, Decision::Duplicate),
        (true, true, Some(0.5), Decision::Duplicate),
        (false, true, Some(0.01), Decision::Supersede),
        (false, true, None, Decision::Supersede),
        (false, false, Some(0.05), Decision::Duplicate),
        (false, false, Some(0.08), Decision::Duplicate),
        (false, false, Some(0.09), Decision::Insert),
        (false, false, None, Decision::Insert),
    ];
    for (exact, same, d, expected) in cases {
        assert_eq!(
            classify(exact, same, d, t),
            expected,
            "{exact} {same} {d:?}"
        );
    }
}

#[test]
fn config_defaults_and_refusals() {
    let d = DistillConfig::from_lookup(|_| None).unwrap();
    assert_eq!(d, DistillConfig::default());
    let bad = [
        ("FARMOPS_DISTILL_BATCH", "0"),
        ("FARMOPS_DISTILL_BATCH", "501"),
        ("FARMOPS_DISTILL_DUPLICATE_SIMILARITY", "1.5"),
        ("FARMOPS_DISTILL_DUPLICATE_SIMILARITY", "0"),
        ("FARMOPS_DISTILL_IDLE_SECS", "-1"),
    ];
    for (var, value) in bad {
        let r = DistillConfig::from_lookup(|v| (v == var).then(|| value.to_string()));
        assert!(r.is_err(), "{var}={value} must be refused");
    }
    let c = DistillConfig::from_lookup(|v| (v == "FARMOPS_DISTILL_IDLE_SECS").then(|| "60".into()))
        .unwrap();
    assert_eq!(c.idle, Duration::from_secs(60));
}
