//! Paystack's side of a webhook delivery: its signature and the events the billing acts on.
//!
//! **Signature.** Paystack signs every webhook with the account's secret key: the header
//! `x-paystack-signature` is the lowercase hex HMAC-SHA512 of the raw request body
//! (<https://paystack.com/docs/payments/webhooks/>). [`verify_signature`] also accepts a
//! timestamped form of the same header, `t=<unix seconds>,v1=<key id>:<hex>` (one or more
//! `v1`), the HMAC-SHA512 of `<t>.<raw body>` within [`TOLERANCE_SECS`] of now: a newer scheme
//! described by one documentation snippet (see `docs/api.md`, "Paystack webhook"). Both need the
//! secret key; both compare in constant time ([`hmac::Mac::verify_slice`]).
//!
//! **Events.** `{"event": "...", "data": {...}}`. `charge.success` carries `data.reference`,
//! `data.status`, `data.amount` (kobo, an integer), `data.currency` and our
//! `data.metadata.farm_id` / `data.metadata.pack` (metadata may also arrive as a JSON string,
//! or as `0` when the payment was started without any). `refund.processed` carries
//! `data.transaction_reference` (the payment refunded), `data.refund_reference`,
//! `data.amount` (kobo, sent as a string in Paystack's sample) and `data.currency`.

use hmac::{KeyInit, Mac};
use serde_json::Value;
use uuid::Uuid;

/// The header Paystack signs its webhooks in.
pub const SIGNATURE_HEADER: &str = "x-paystack-signature";

/// How far the timestamp of the timestamped form may be from now, either way.
pub const TOLERANCE_SECS: i64 = 300;

type HmacSha512 = hmac::Hmac<sha2_011::Sha512>;

/// Why a delivery's signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    /// No `x-paystack-signature` header (or an empty one).
    Missing,
    /// Neither 128 hex digits nor `t=...,v1=...`.
    Malformed,
    /// Well-formed, but not the body's signature with our key.
    Mismatch,
    /// Timestamped form, outside [`TOLERANCE_SECS`] of now.
    Stale,
}

/// Which form of the header matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureScheme {
    /// hex HMAC-SHA512 of the body.
    Body,
    /// `t=..,v1=<key id>:<hex>`; the key id of the signature that matched.
    Timestamped { key_id: String },
}

fn mac(secret: &[u8]) -> HmacSha512 {
    // HMAC takes a key of any length
    <HmacSha512 as KeyInit>::new_from_slice(secret).expect("HMAC accepts any key length")
}

/// Checks `header` (the value of `x-paystack-signature`, if any) against the raw body as
/// received. `now` is the current Unix time in seconds (for the timestamped form).
pub fn verify_signature(
    raw_body: &[u8],
    header: Option<&str>,
    secret: &[u8],
    now: i64,
) -> Result<SignatureScheme, SignatureError> {
    let header = header.map(str::trim).filter(|h| !h.is_empty());
    let header = header.ok_or(SignatureError::Missing)?;
    if header.contains('=') {
        return verify_timestamped(raw_body, header, secret, now);
    }
    let tag = decode_tag(header).ok_or(SignatureError::Malformed)?;
    let mut m = mac(secret);
    m.update(raw_body);
    m.verify_slice(&tag)
        .map(|_| SignatureScheme::Body)
        .map_err(|_| SignatureError::Mismatch)
}

fn verify_timestamped(
    raw_body: &[u8],
    header: &str,
    secret: &[u8],
    now: i64,
) -> Result<SignatureScheme, SignatureError> {
    let mut t: Option<i64> = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let Some((key, value)) = part.split_once('=') else {
            continue;
        };
        match key.trim() {
            "t" => {
                let value = value.trim();
                let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
                if t.is_some() || !digits {
                    return Err(SignatureError::Malformed);
                }
                t = Some(value.parse().map_err(|_| SignatureError::Malformed)?);
            }
            "v1" => {
                if let Some((kid, hex)) = value.trim().split_once(':') {
                    signatures.push((kid.to_string(), hex.to_string()));
                }
            }
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if now.abs_diff(t) > TOLERANCE_SECS as u64 {
        return Err(SignatureError::Stale);
    }
    let mut m = mac(secret);
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(raw_body);
    for (key_id, hex) in signatures {
        let Some(tag) = decode_tag(&hex) else {
            continue;
        };
        if m.clone().verify_slice(&tag).is_ok() {
            return Ok(SignatureScheme::Timestamped { key_id });
        }
    }
    Err(SignatureError::Mismatch)
}

/// 128 hex digits as the 64 bytes of a SHA-512 HMAC.
fn decode_tag(hex_tag: &str) -> Option<Vec<u8>> {
    let hex_tag = hex_tag.trim();
    if hex_tag.len() != 128 {
        return None;
    }
    hex::decode(hex_tag).ok()
}

/// The `x-paystack-signature` Paystack would send for `raw_body` (tests and
/// `scripts/paystack-event.sh`'s Rust twin).
pub fn sign(raw_body: &[u8], secret: &[u8]) -> String {
    let mut m = mac(secret);
    m.update(raw_body);
    hex::encode(m.finalize().into_bytes())
}

/// The timestamped form of the header for `raw_body` at Unix time `t`.
pub fn sign_timestamped(raw_body: &[u8], secret: &[u8], t: i64, key_id: &str) -> String {
    let mut m = mac(secret);
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(raw_body);
    format!(
        "t={t},v1={key_id}:{}",
        hex::encode(m.finalize().into_bytes())
    )
}

// ---------------------------------------------------------------- events

/// A delivery's event, as far as the billing cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    ChargeSuccess(Charge),
    RefundProcessed(Refund),
    /// Any other event (`transfer.success`, `charge.dispute.create`, ...): recorded, ignored.
    Other {
        event: String,
        reference: Option<String>,
    },
}

/// `charge.success`. Everything but the reference is checked by the database's door.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub reference: String,
    pub status: Option<String>,
    pub currency: Option<String>,
    pub amount_kobo: Option<i64>,
    /// `metadata.farm_id`, when it is a UUID.
    pub farm_id: Option<Uuid>,
    pub pack: Option<String>,
}

/// `refund.processed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    /// The reference of the payment refunded.
    pub transaction_reference: String,
    pub refund_reference: String,
    pub amount_kobo: Option<i64>,
    pub currency: Option<String>,
}

/// A body that is not an event the billing can read (it is still recorded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub event: Option<String>,
    pub reference: Option<String>,
    pub why: String,
}

/// Reads the event of a delivery whose signature was verified.
pub fn parse_event(raw_body: &[u8]) -> Result<Event, Malformed> {
    let malformed = |event: Option<&str>, reference: Option<String>, why: &str| Malformed {
        event: event.map(str::to_string),
        reference,
        why: why.to_string(),
    };
    let value: Value = serde_json::from_slice(raw_body)
        .map_err(|e| malformed(None, None, &format!("the body is not JSON: {e}")))?;
    let Some(event) = value.get("event").and_then(Value::as_str) else {
        return Err(malformed(None, None, "the body has no \"event\""));
    };
    let data = value.get("data").filter(|d| d.is_object());
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let reference = text(data.and_then(|d| d.get("reference")));
    let Some(data) = data else {
        return Err(malformed(
            Some(event),
            None,
            "the event has no \"data\" object",
        ));
    };
    match event {
        "charge.success" => {
            let Some(reference) = reference.filter(|r| !r.trim().is_empty()) else {
                return Err(malformed(Some(event), None, "data.reference is missing"));
            };
            let metadata = metadata(data.get("metadata"));
            let field = |name: &str| text(metadata.as_ref().and_then(|m| m.get(name)));
            Ok(Event::ChargeSuccess(Charge {
                reference,
                status: text(data.get("status")),
                currency: text(data.get("currency")),
                amount_kobo: kobo(data.get("amount")),
                farm_id: field("farm_id").and_then(|f| Uuid::parse_str(f.trim()).ok()),
                pack: field("pack"),
            }))
        }
        "refund.processed" => {
            let transaction_reference = text(data.get("transaction_reference"))
                .or_else(|| text(data.get("transaction").and_then(|t| t.get("reference"))));
            let refund_reference =
                text(data.get("refund_reference")).or_else(|| data.get("id").and_then(scalar_text));
            match (transaction_reference, refund_reference) {
                (Some(t), Some(r)) if !t.trim().is_empty() && !r.trim().is_empty() => {
                    Ok(Event::RefundProcessed(Refund {
                        transaction_reference: t,
                        refund_reference: r,
                        amount_kobo: kobo(data.get("amount")),
                        currency: text(data.get("currency")),
                    }))
                }
                (t, _) => Err(malformed(
                    Some(event),
                    t,
                    "data.transaction_reference or data.refund_reference is missing",
                )),
            }
        }
        other => Ok(Event::Other {
            event: other.to_string(),
            reference,
        }),
    }
}

/// `metadata` as an object: given as one, or as a string holding one; anything else (`0`,
/// `null`, `""`) has none.
fn metadata(value: Option<&Value>) -> Option<serde_json::Map<String, Value>> {
    match value? {
        Value::Object(map) => Some(map.clone()),
        Value::String(s) => match serde_json::from_str(s) {
            Ok(Value::Object(map)) => Some(map),
            _ => None,
        },
        _ => None,
    }
}

/// An amount in kobo: a whole number, or a string of digits (refunds send `"5000"`).
fn kobo(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
