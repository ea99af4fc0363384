//! The canonical encoding of a chain entry, its hash and the signed checkpoint message.

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The first line of every entry's canonical text.
pub const ENTRY_VERSION: &str = "farmops-evidence/1";
/// The first line of every signed checkpoint message.
pub const CHECKPOINT_VERSION: &str = "farmops-evidence-checkpoint/1";
/// The bundle format `farmops export-evidence` writes.
pub const BUNDLE_FORMAT: &str = "farmops-evidence-bundle/1";
/// The hash before a farm's first entry.
pub const GENESIS: [u8; 32] = [0; 32];
/// The only signing algorithm (KMS `ECDSA_SHA_256` over `ECC_NIST_P256`; signatures DER).
pub const ALGORITHM: &str = "ECDSA_SHA_256";

/// The field names of each kind of entry, in their fixed order (`evidence_keys()` in SQL).
pub fn keys(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "ledger" => &[
            "id",
            "entry_type",
            "delta",
            "balance_after",
            "ai_run_id",
            "lot_id",
            "reason",
            "actor",
            "created_at",
        ],
        "run_opened" => &["id", "feature", "model", "user_id", "created_at"],
        "run_opened_with_hold" => &[
            "id",
            "feature",
            "model",
            "user_id",
            "created_at",
            "hold_id",
            "hold_delta",
            "hold_balance_after",
            "hold_lot_id",
            "hold_reason",
            "hold_actor",
            "hold_created_at",
        ],
        "run_closed" => &[
            "id",
            "status",
            "credits_reserved",
            "credits_charged",
            "input_tokens",
            "output_tokens",
            "latency_ms",
            "response_summary",
            "error",
            "finished_at",
        ],
        "draft_decided" => &[
            "id",
            "ai_run_id",
            "record_type",
            "payload",
            "status",
            "edited_payload",
            "decided_by",
            "decided_at",
            "decision_note",
            "record_id",
        ],
        "recommendation_decided" => &[
            "id",
            "ai_run_id",
            "title",
            "body",
            "status",
            "decided_by",
            "decided_at",
            "decision_note",
        ],
        "record" => &[
            "table",
            "id",
            "provenance",
            "draft_id",
            "ai_run_id",
            "occurred_on",
            "created_by",
            "confirmed_by",
            "confirmed_at",
            "created_at",
            "data",
        ],
        _ => return None,
    })
}

/// Where a kind carries a ledger leg: the positions of the leg's `delta` and `balance_after`
/// in its fields (a `ledger` entry; a `run_opened_with_hold`, whose leg is the run's first hold).
pub fn leg_positions(kind: &str) -> Option<(usize, usize)> {
    match kind {
        "ledger" => Some((2, 3)),
        "run_opened_with_hold" => Some((6, 7)),
        _ => None,
    }
}

/// A value in the canonical text: `\` as `\\`, line feed as `\n`, carriage return as `\r`;
/// every other character as itself (UTF-8).
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// The canonical text of one entry, or why it has none (an unknown kind, or not one value per
/// field of the kind).
pub fn canonical(
    farm: Uuid,
    seq: i64,
    kind: &str,
    source: &str,
    values: &[Option<String>],
) -> Result<String, String> {
    let keys = keys(kind).ok_or_else(|| format!("unknown entry kind {kind:?}"))?;
    if keys.len() != values.len() {
        return Err(format!(
            "a {kind} entry has {} fields, not {}",
            keys.len(),
            values.len()
        ));
    }
    let mut text = format!(
        "{ENTRY_VERSION}\nfarm={}\nseq={seq}\nkind={}\nsource={}\n",
        farm.hyphenated(),
        escape(kind),
        escape(source)
    );
    for (key, value) in keys.iter().zip(values) {
        text.push_str(key);
        if let Some(v) = value {
            text.push('=');
            text.push_str(&escape(v));
        }
        text.push('\n');
    }
    Ok(text)
}

/// `SHA-256(prev || canonical)`.
pub fn entry_hash(prev: &[u8; 32], canonical: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(canonical.as_bytes());
    h.finalize().into()
}

/// The message a checkpoint signs (the signer hashes it with SHA-256).
pub fn checkpoint_message(farm: Uuid, seq: i64, hash: &[u8; 32], signed_at: &str) -> String {
    format!(
        "{CHECKPOINT_VERSION}\nfarm={}\nseq={seq}\nhash={}\nsigned_at={signed_at}\n",
        farm.hyphenated(),
        hex::encode(hash)
    )
}
