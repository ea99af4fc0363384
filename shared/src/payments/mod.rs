//! Top-ups through Paystack: a signed webhook event becomes paid credits, a refund takes them
//! back, and every event is on the record (migration 0081).
//!
//! [`record_paystack_event`] is the whole of the billing function's work: it checks the
//! signature against the raw body ([`paystack::verify_signature`]; refused: 401
//! `invalid_signature`, nothing written), reads the event ([`paystack::parse_event`]) and calls
//! ONE of the database's doors as `farmops_billing`, which records the event and decides its
//! [`PaymentVerdict`]: the credits come from the pack table, the amount must be the pack's price,
//! a reference is granted once. Any event with a valid signature is answered 200 with its
//! verdict (so Paystack stops retrying), whatever the verdict.
//!
//! The operator side (`farmops set-pack`, `farmops payments`) is [`set_pack`] and
//! [`payment_events`], as the owner role.

pub mod paystack;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    config::Secret,
    db::{Db, Type},
    error::{Error, Result},
};
use paystack::{Event, SignatureError};

/// The largest webhook body recorded (`payment_events.raw`); Paystack's events are a few KB.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;

/// What was done about one event (`payment_events.verdict`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentVerdict {
    /// `charge.success` accepted: the pack's credits are a new paid lot.
    Granted,
    /// `refund.processed` applied: the payment's lot revoked, what was left of it taken back.
    Refunded,
    /// A redelivery of a granted payment, or a refund of a refunded one: nothing done.
    Duplicate,
    UnknownFarm,
    UnknownPack,
    /// The amount paid is not the pack's price (or a refund is larger than the payment).
    AmountMismatch,
    /// Not naira.
    WrongCurrency,
    /// `data.status` is not `success`.
    NotSuccessful,
    /// A refund of a reference that was never granted.
    UnknownReference,
    /// Not an event the billing can read.
    Malformed,
    /// An event the billing does not act on.
    Ignored,
}

impl PaymentVerdict {
    pub const ALL: [PaymentVerdict; 11] = [
        PaymentVerdict::Granted,
        PaymentVerdict::Refunded,
        PaymentVerdict::Duplicate,
        PaymentVerdict::UnknownFarm,
        PaymentVerdict::UnknownPack,
        PaymentVerdict::AmountMismatch,
        PaymentVerdict::WrongCurrency,
        PaymentVerdict::NotSuccessful,
        PaymentVerdict::UnknownReference,
        PaymentVerdict::Malformed,
        PaymentVerdict::Ignored,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PaymentVerdict::Granted => "granted",
            PaymentVerdict::Refunded => "refunded",
            PaymentVerdict::Duplicate => "duplicate",
            PaymentVerdict::UnknownFarm => "unknown_farm",
            PaymentVerdict::UnknownPack => "unknown_pack",
            PaymentVerdict::AmountMismatch => "amount_mismatch",
            PaymentVerdict::WrongCurrency => "wrong_currency",
            PaymentVerdict::NotSuccessful => "not_successful",
            PaymentVerdict::UnknownReference => "unknown_reference",
            PaymentVerdict::Malformed => "malformed",
            PaymentVerdict::Ignored => "ignored",
        }
    }

    pub fn parse(s: &str) -> Option<PaymentVerdict> {
        PaymentVerdict::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// The answer to one delivery (the webhook's 200 body), as the door returned it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// `payment_events.id` of this delivery.
    pub event_id: i64,
    pub verdict: PaymentVerdict,
    pub detail: Option<String>,
    pub farm_id: Option<Uuid>,
    /// The lot granted, or clawed back from.
    pub lot_id: Option<i64>,
    /// Granted, or clawed back.
    pub credits: Option<i64>,
    /// Refunds: the pack's credits that could not be taken back (spent, or held by open runs).
    pub shortfall: Option<i64>,
    /// The farm's balance after the grant or the claw-back.
    pub balance: Option<i64>,
}

/// Verifies, reads and records one Paystack delivery: `raw_body` exactly as received,
/// `signature` the `x-paystack-signature` header (None when absent), `secret` the Paystack
/// secret key, `now` the time of receipt (the timestamped signature's window). Connects through
/// `db` (the billing role). A bad signature is [`Error::InvalidSignature`] and writes nothing.
#[tracing::instrument(skip_all, fields(bytes = raw_body.len()))]
pub async fn record_paystack_event(
    db: &Db,
    raw_body: &[u8],
    signature: Option<&str>,
    secret: &Secret,
    now: DateTime<Utc>,
) -> Result<Receipt> {
    if raw_body.len() > MAX_EVENT_BYTES {
        return Err(Error::PayloadTooLarge {
            limit: MAX_EVENT_BYTES,
        });
    }
    let scheme = paystack::verify_signature(
        raw_body,
        signature,
        secret.expose().as_bytes(),
        now.timestamp(),
    )
    .map_err(|e| {
        tracing::info!(reason = ?e, "paystack signature refused");
        Error::InvalidSignature(match e {
            SignatureError::Missing => "the x-paystack-signature header is missing",
            SignatureError::Malformed => "the x-paystack-signature header is malformed",
            SignatureError::Mismatch => "the signature does not match the body",
            SignatureError::Stale => "the signature's timestamp is outside the allowed window",
        })
    })?;
    tracing::debug!(?scheme, "paystack signature verified");
    let raw = recorded_text(raw_body);
    let client = db.client().await?;
    let row = match paystack::parse_event(raw_body) {
        Ok(Event::ChargeSuccess(c)) => {
            client
                .query_typed(
                    "SELECT paystack_record_charge($1, $2, $3, $4, $5, $6, $7)",
                    &[
                        (&raw, Type::TEXT),
                        (&c.reference, Type::TEXT),
                        (&c.farm_id, Type::UUID),
                        (&c.pack, Type::TEXT),
                        (&c.amount_kobo, Type::INT8),
                        (&c.currency, Type::TEXT),
                        (&c.status, Type::TEXT),
                    ],
                )
                .await?
        }
        Ok(Event::RefundProcessed(r)) => {
            client
                .query_typed(
                    "SELECT paystack_record_refund($1, $2, $3, $4, $5)",
                    &[
                        (&raw, Type::TEXT),
                        (&r.transaction_reference, Type::TEXT),
                        (&r.refund_reference, Type::TEXT),
                        (&r.amount_kobo, Type::INT8),
                        (&r.currency, Type::TEXT),
                    ],
                )
                .await?
        }
        Ok(Event::Other { event, reference }) => {
            let why = format!("{event} is not an event the billing acts on");
            unusable(
                &client,
                &raw,
                Some(&event),
                reference.as_deref(),
                "ignored",
                &why,
            )
            .await?
        }
        Err(m) => {
            let (event, reference) = (m.event.as_deref(), m.reference.as_deref());
            unusable(&client, &raw, event, reference, "malformed", &m.why).await?
        }
    };
    let receipt: serde_json::Value = row
        .first()
        .ok_or_else(|| Error::unexpected("a paystack door returned no row"))?
        .get(0);
    let receipt: Receipt = serde_json::from_value(receipt)
        .map_err(|e| Error::unexpected(format!("a paystack door's answer: {e}")))?;
    tracing::info!(
        event_id = receipt.event_id,
        verdict = receipt.verdict.as_str(),
        "paystack event recorded"
    );
    Ok(receipt)
}

/// The body as `payment_events.raw` keeps it: text, the bytes that are not UTF-8 (and NUL,
/// which PostgreSQL text cannot hold) replaced by U+FFFD, cut at [`MAX_EVENT_BYTES`] on a
/// character boundary (a replacement takes three bytes where the byte took one).
fn recorded_text(raw_body: &[u8]) -> String {
    let mut text = String::from_utf8_lossy(raw_body).replace('\0', "\u{FFFD}");
    text.truncate(crate::text::clip_to_bytes(&text, MAX_EVENT_BYTES).len());
    text
}

async fn unusable(
    client: &tokio_postgres::Client,
    raw: &str,
    event: Option<&str>,
    reference: Option<&str>,
    verdict: &str,
    why: &str,
) -> Result<Vec<tokio_postgres::Row>> {
    Ok(client
        .query_typed(
            "SELECT paystack_record_unusable($1, $2, $3, $4, $5)",
            &[
                (&raw, Type::TEXT),
                (&event, Type::TEXT),
                (&reference, Type::TEXT),
                (&verdict, Type::TEXT),
                (&why, Type::TEXT),
            ],
        )
        .await?)
}

// ---------------------------------------------------------------- operator side (owner role)

/// A pack a farm can buy: `credits` for `price_kobo` (₦1 = 100 kobo).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditPack {
    pub name: String,
    pub credits: i64,
    pub price_kobo: i64,
}

impl CreditPack {
    /// 422 naming the field: a name of lowercase letters, digits, `-` and `_` (up to 63,
    /// starting with a letter or digit), positive credits and price.
    pub fn validate(&self) -> Result<()> {
        let name_ok = (1..=63).contains(&self.name.len())
            && self.name.bytes().enumerate().all(|(i, b)| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || (i > 0 && (b == b'-' || b == b'_'))
            });
        if !name_ok {
            return Err(Error::invalid(
                "name",
                "1 to 63 of a-z, 0-9, '-' and '_', starting with a letter or digit",
            ));
        }
        if self.credits <= 0 {
            return Err(Error::invalid("credits", "must be a positive whole number"));
        }
        if self.price_kobo <= 0 {
            return Err(Error::invalid(
                "price_kobo",
                "must be a positive whole number of kobo",
            ));
        }
        Ok(())
    }
}

/// Creates or replaces a pack (owner role). Events already recorded keep what they were.
pub async fn set_pack(db: &Db, pack: &CreditPack) -> Result<CreditPack> {
    pack.validate()?;
    let client = db.client().await?;
    client
        .query_typed(
            "INSERT INTO credit_packs (name, credits, price_kobo) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE
               SET credits = EXCLUDED.credits, price_kobo = EXCLUDED.price_kobo, updated_at = now()",
            &[
                (&pack.name, Type::TEXT),
                (&pack.credits, Type::INT8),
                (&pack.price_kobo, Type::INT8),
            ],
        )
        .await?;
    Ok(pack.clone())
}

/// One recorded delivery (`farmops payments`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaymentEvent {
    pub id: i64,
    pub received_at: DateTime<Utc>,
    pub event: Option<String>,
    pub reference: Option<String>,
    pub refund_reference: Option<String>,
    pub farm_id: Option<Uuid>,
    pub pack: Option<String>,
    pub amount_kobo: Option<i64>,
    pub currency: Option<String>,
    pub verdict: PaymentVerdict,
    pub detail: Option<String>,
    pub lot_id: Option<i64>,
    pub credits: Option<i64>,
    pub shortfall: Option<i64>,
    /// The body as received, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

/// The recorded deliveries, oldest first, of one farm or of all (owner role): what was
/// received, what was granted, and why the rest was refused.
pub async fn payment_events(
    db: &Db,
    farm: Option<Uuid>,
    with_raw: bool,
) -> Result<Vec<PaymentEvent>> {
    let client = db.client().await?;
    let rows = client
        .query_typed(
            "SELECT id, received_at, event, reference, refund_reference, farm_id, pack,
                    amount_kobo, currency, verdict, detail, lot_id, credits, shortfall,
                    CASE WHEN $2 THEN raw END AS raw
               FROM payment_events
              WHERE $1::uuid IS NULL OR farm_id = $1
              ORDER BY id",
            &[(&farm, Type::UUID), (&with_raw, Type::BOOL)],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let verdict: String = r.get("verdict");
            Ok(PaymentEvent {
                id: r.get("id"),
                received_at: r.get("received_at"),
                event: r.get("event"),
                reference: r.get("reference"),
                refund_reference: r.get("refund_reference"),
                farm_id: r.get("farm_id"),
                pack: r.get("pack"),
                amount_kobo: r.get("amount_kobo"),
                currency: r.get("currency"),
                verdict: PaymentVerdict::parse(&verdict)
                    .ok_or_else(|| Error::unexpected(format!("unknown verdict {verdict}")))?,
                detail: r.get("detail"),
                lot_id: r.get("lot_id"),
                credits: r.get("credits"),
                shortfall: r.get("shortfall"),
                raw: r.get("raw"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorded_body_is_text_within_the_limit() {
        assert_eq!(recorded_text(b"{\"a\":1}"), "{\"a\":1}");
        assert_eq!(recorded_text(b"a\0b\xffc"), "a\u{FFFD}b\u{FFFD}c");
        let invalid = vec![0xffu8; MAX_EVENT_BYTES];
        let text = recorded_text(&invalid);
        assert!(text.len() <= MAX_EVENT_BYTES && text.len() > MAX_EVENT_BYTES - 3);
        assert!(text.chars().all(|c| c == '\u{FFFD}'));
    }

    #[test]
    fn verdicts_round_trip_and_match_serde() {
        for v in PaymentVerdict::ALL {
            assert_eq!(PaymentVerdict::parse(v.as_str()), Some(v));
            assert_eq!(serde_json::to_value(v).unwrap(), v.as_str());
        }
        assert_eq!(PaymentVerdict::parse("paid"), None);
    }

    /// The verdicts the migration's CHECK allows are exactly these.
    #[test]
    fn the_migration_allows_exactly_these_verdicts() {
        let sql = include_str!("../../../migrations/0081_paystack_payments.sql");
        let list = sql
            .split("verdict IN (")
            .nth(1)
            .and_then(|s| s.split(')').next())
            .unwrap();
        let mut allowed: Vec<&str> = list
            .split(',')
            .map(|s| s.trim().trim_matches('\''))
            .collect();
        allowed.sort();
        let mut ours: Vec<&str> = PaymentVerdict::ALL.iter().map(|v| v.as_str()).collect();
        ours.sort();
        assert_eq!(allowed, ours);
    }

    /// A paid pack's lot takes the priority of a grant that names none (after promotions).
    #[test]
    fn paid_packs_get_the_default_lot_priority() {
        let sql = include_str!("../../../migrations/0081_paystack_payments.sql");
        let grant = sql.split("FROM credit_add_lot(").nth(1).unwrap();
        let args: Vec<&str> = grant.split(',').map(str::trim).take(4).collect();
        assert_eq!(args[2], "'paid'");
        assert_eq!(
            args[3],
            crate::credits::lots::DEFAULT_PRIORITY.to_string(),
            "{args:?}"
        );
    }

    #[test]
    fn packs_are_validated() {
        let pack = |name: &str, credits, price_kobo| CreditPack {
            name: name.into(),
            credits,
            price_kobo,
        };
        assert!(pack("starter", 500, 500_000).validate().is_ok());
        assert!(pack("pro_2026-q1", 1, 1).validate().is_ok());
        for (p, field) in [
            (pack("", 1, 1), "name"),
            (pack("Starter", 1, 1), "name"),
            (pack("-x", 1, 1), "name"),
            (pack("a b", 1, 1), "name"),
            (pack(&"a".repeat(64), 1, 1), "name"),
            (pack("x", 0, 1), "credits"),
            (pack("x", -5, 1), "credits"),
            (pack("x", 1, 0), "price_kobo"),
        ] {
            match p.validate() {
                Err(Error::Invalid(fields)) => assert_eq!(fields[0].field, field, "{p:?}"),
                other => panic!("{p:?}: {other:?}"),
            }
        }
    }
}
