//! Tests of the chain's encoding: the golden vectors, escaping, and kinds or arities that have
//! no encoding.

use uuid::Uuid;

use super::*;

const FARM: &str = "11111111-1111-4111-8111-111111111111";

/// The golden vectors (`shared/fixtures/evidence-chain-golden.json`): fixed fields, their
/// canonical text and hashes. `shared/tests/governance/chain.rs` checks the database's
/// encoding against the same file.
pub const GOLDEN: &str = include_str!("../../../fixtures/evidence-chain-golden.json");

#[test]
fn golden_vectors() {
    let golden: serde_json::Value = serde_json::from_str(GOLDEN).unwrap();
    let farm: Uuid = golden["farm_id"].as_str().unwrap().parse().unwrap();
    let mut prev = GENESIS;
    let vectors = golden["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 3);
    for v in vectors {
        let fields: Vec<Option<String>> = serde_json::from_value(v["fields"].clone()).unwrap();
        let text = canonical(
            farm,
            v["seq"].as_i64().unwrap(),
            v["kind"].as_str().unwrap(),
            v["source_id"].as_str().unwrap(),
            &fields,
        )
        .unwrap();
        assert_eq!(text, v["canonical"].as_str().unwrap());
        assert_eq!(hex::encode(prev), v["prev"].as_str().unwrap());
        prev = entry_hash(&prev, &text);
        assert_eq!(hex::encode(prev), v["hash"].as_str().unwrap());
    }
    // and one byte-exact literal, so a change of the fixture alone cannot move the format
    assert_eq!(
        vectors[0]["canonical"].as_str().unwrap(),
        "farmops-evidence/1\nfarm=11111111-1111-4111-8111-111111111111\nseq=1\nkind=ledger\n\
         source=1\nid=1\nentry_type=grant\ndelta=100\nbalance_after=100\nai_run_id\nlot_id=1\n\
         reason=seed\nactor=operator\ncreated_at=2026-01-02T03:04:05.000006Z\n"
    );
    assert_eq!(
        vectors[0]["hash"].as_str().unwrap(),
        "eaf7805dde51a71a4988112b51c39d1737d9846e7adaf05505ba00ff9edceb19"
    );
}

#[test]
fn escaping_is_reversible_and_line_safe() {
    assert_eq!(escape("a\\n\nb\r"), "a\\\\n\\nb\\r");
    assert!(!escape("x\ny\rz").contains(['\n', '\r']));
}

#[test]
fn wrong_kind_or_arity_has_no_encoding() {
    let farm: Uuid = FARM.parse().unwrap();
    assert!(canonical(farm, 1, "nope", "1", &[]).is_err());
    assert!(canonical(farm, 1, "run_opened", "1", &[None]).is_err());
}
