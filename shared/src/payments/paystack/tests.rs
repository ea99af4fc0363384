//! Tests of Paystack webhooks: the signature table and the documented events.

use super::*;

const SECRET: &[u8] = b"sk_test_farmops_local";

/// (name, body, header, expected)
type Case<'a> = (
    &'a str,
    &'a [u8],
    Option<String>,
    Result<SignatureScheme, SignatureError>,
);
const NOW: i64 = 1_780_000_000;

/// RFC 4231 test case 2 (key "Jefe"): our HMAC-SHA512 is the standard one.
#[test]
fn hmac_sha512_matches_rfc_4231() {
    assert_eq!(
        sign(b"what do ya want for nothing?", b"Jefe"),
        "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
    );
}

#[test]
fn signatures_table() {
    let body = br#"{"event":"charge.success","data":{"reference":"r1"}}"#;
    let good = sign(body, SECRET);
    let other_key = sign(body, b"sk_test_someone_else");
    let mut flipped = good.clone().into_bytes();
    flipped[10] = if flipped[10] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).unwrap();
    let altered = br#"{"event":"charge.success","data":{"reference":"r2"}}"#;
    let stamped = sign_timestamped(body, SECRET, NOW - 10, "k1");
    let hex_at = |secret: &[u8], t| {
        let header = sign_timestamped(body, secret, t, "k");
        header.rsplit(':').next().unwrap().to_string()
    };
    // during a key rotation: one signature per key, ours second
    let two = format!(
        "t={NOW},v1=k1:{},v1=k2:{}",
        hex_at(b"old-key", NOW),
        hex_at(SECRET, NOW)
    );
    use SignatureError::*;
    let cases: Vec<Case<'_>> = vec![
        ("valid", body, Some(good.clone()), Ok(SignatureScheme::Body)),
        (
            "upper-case hex",
            body,
            Some(good.to_uppercase()),
            Ok(SignatureScheme::Body),
        ),
        (
            "surrounding spaces",
            body,
            Some(format!(" {good} ")),
            Ok(SignatureScheme::Body),
        ),
        ("missing", body, None, Err(Missing)),
        ("empty", body, Some(String::new()), Err(Missing)),
        ("another key", body, Some(other_key), Err(Mismatch)),
        ("one digit changed", body, Some(flipped), Err(Mismatch)),
        (
            "body altered after signing",
            altered,
            Some(good.clone()),
            Err(Mismatch),
        ),
        (
            "truncated",
            body,
            Some(good[..127].to_string()),
            Err(Malformed),
        ),
        ("not hex", body, Some("z".repeat(128)), Err(Malformed)),
        ("sha256 length", body, Some("a".repeat(64)), Err(Malformed)),
        (
            "timestamped",
            body,
            Some(stamped.clone()),
            Ok(SignatureScheme::Timestamped {
                key_id: "k1".into(),
            }),
        ),
        (
            "timestamped, second signature matches",
            body,
            Some(two),
            Ok(SignatureScheme::Timestamped {
                key_id: "k2".into(),
            }),
        ),
        (
            "timestamped, body altered",
            altered,
            Some(stamped.clone()),
            Err(Mismatch),
        ),
        (
            "timestamped, too old",
            body,
            Some(sign_timestamped(
                body,
                SECRET,
                NOW - TOLERANCE_SECS - 1,
                "k1",
            )),
            Err(Stale),
        ),
        (
            "timestamped, too far ahead",
            body,
            Some(sign_timestamped(
                body,
                SECRET,
                NOW + TOLERANCE_SECS + 1,
                "k1",
            )),
            Err(Stale),
        ),
        (
            "timestamped, t changed",
            body,
            Some(stamped.replacen(&format!("t={}", NOW - 10), &format!("t={}", NOW - 11), 1)),
            Err(Mismatch),
        ),
        (
            "timestamped, no t",
            body,
            Some(format!("v1=k1:{good}")),
            Err(Malformed),
        ),
        (
            "timestamped, no v1",
            body,
            Some(format!("t={NOW}")),
            Err(Malformed),
        ),
        (
            "timestamped, two t",
            body,
            Some(format!("t={NOW},t={NOW},{stamped}")),
            Err(Malformed),
        ),
        (
            "timestamped, signed t",
            body,
            Some(format!("t=-{NOW},v1=k:{good}")),
            Err(Malformed),
        ),
        (
            "timestamped, body signature in v1",
            body,
            Some(format!("t={NOW},v1=k1:{good}")),
            Err(Mismatch),
        ),
    ];
    for (name, raw, header, expected) in cases {
        assert_eq!(
            verify_signature(raw, header.as_deref(), SECRET, NOW),
            expected,
            "{name}"
        );
    }
}

/// Paystack's documented sample `charge.success` (metadata `0`), then with ours.
#[test]
fn reads_the_documented_charge_success() {
    let sample = include_str!("../../../fixtures/paystack/charge-success.json");
    let Ok(Event::ChargeSuccess(charge)) = parse_event(sample.as_bytes()) else {
        panic!("charge.success");
    };
    assert_eq!(charge.reference, "fo-sample-0001");
    assert_eq!(charge.status.as_deref(), Some("success"));
    assert_eq!(charge.currency.as_deref(), Some("NGN"));
    assert_eq!(charge.amount_kobo, Some(500_000));
    assert_eq!((charge.farm_id, charge.pack), (None, None));

    let farm = Uuid::new_v4();
    let mut ours: Value = serde_json::from_str(sample).unwrap();
    ours["data"]["metadata"] = serde_json::json!({"farm_id": farm.to_string(), "pack": "starter"});
    let Ok(Event::ChargeSuccess(charge)) = parse_event(ours.to_string().as_bytes()) else {
        panic!("charge.success");
    };
    assert_eq!(
        (charge.farm_id, charge.pack.as_deref()),
        (Some(farm), Some("starter"))
    );
    // metadata as a JSON string, as some integrations send it
    ours["data"]["metadata"] = Value::String(format!(r#"{{"farm_id":"{farm}","pack":"starter"}}"#));
    let Ok(Event::ChargeSuccess(charge)) = parse_event(ours.to_string().as_bytes()) else {
        panic!("charge.success");
    };
    assert_eq!(charge.farm_id, Some(farm));
}

#[test]
fn reads_the_documented_refund_processed() {
    let sample = include_str!("../../../fixtures/paystack/refund-processed.json");
    let Ok(Event::RefundProcessed(refund)) = parse_event(sample.as_bytes()) else {
        panic!("refund.processed");
    };
    assert_eq!(refund.transaction_reference, "fo-sample-0001");
    assert_eq!(refund.refund_reference, "1320133000001");
    assert_eq!(refund.amount_kobo, Some(500_000), "a string of digits");
    assert_eq!(refund.currency.as_deref(), Some("NGN"));
}

#[test]
fn other_and_unreadable_events() {
    assert_eq!(
        parse_event(br#"{"event":"transfer.success","data":{"reference":"t1"}}"#),
        Ok(Event::Other {
            event: "transfer.success".into(),
            reference: Some("t1".into())
        })
    );
    for (body, event) in [
        (&b"{not json"[..], None),
        (b"", None),
        (b"[1,2]", None),
        (br#"{"data":{}}"#, None),
        (br#"{"event":"charge.success"}"#, Some("charge.success")),
        (
            br#"{"event":"charge.success","data":{"amount":5}}"#,
            Some("charge.success"),
        ),
        (
            br#"{"event":"charge.success","data":{"reference":""}}"#,
            Some("charge.success"),
        ),
        (
            br#"{"event":"refund.processed","data":{"refund_reference":"x"}}"#,
            Some("refund.processed"),
        ),
    ] {
        let err = parse_event(body).unwrap_err();
        assert_eq!(
            err.event.as_deref(),
            event,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    let Ok(Event::ChargeSuccess(c)) = parse_event(
        br#"{"event":"charge.success","data":{"reference":"r","amount":"12.5","metadata":{"farm_id":"nope"}}}"#,
    ) else {
        panic!()
    };
    assert_eq!((c.amount_kobo, c.farm_id, c.status), (None, None, None));
}
