//! The per-farm evidence hash chain (migration 0090, `docs/evidence-chain.md`): the canonical
//! encoding of an entry, its hash, the signed checkpoint message, and the offline verification
//! of an exported bundle. Pure: no database, no clock, no network (`farmops verify` links only
//! this and the signature check).
//!
//! The encoding here and `evidence_canonical()` in the migration are the two definitions of
//! one format; the golden vectors (tests below and `shared/tests/governance/chain.rs`) keep
//! them equal.

use p256::ecdsa::{Signature, VerifyingKey, signature::Verifier};
use p256::pkcs8::{DecodePublicKey, EncodePublicKey};
use serde::{Deserialize, Serialize};
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

/// A public key's fingerprint: lowercase hex SHA-256 of its DER SubjectPublicKeyInfo.
pub fn fingerprint(spki_der: &[u8]) -> String {
    hex::encode(Sha256::digest(spki_der))
}

/// A P-256 public key from PEM (`-----BEGIN PUBLIC KEY-----`), with its fingerprint.
pub fn public_key_from_pem(pem: &str) -> Result<(VerifyingKey, String), String> {
    let key = VerifyingKey::from_public_key_pem(pem.trim())
        .map_err(|e| format!("not a P-256 public key in PEM: {e}"))?;
    let der = key
        .to_public_key_der()
        .map_err(|e| format!("encoding the public key: {e}"))?;
    Ok((key, fingerprint(der.as_bytes())))
}

/// Checks a DER ECDSA P-256 / SHA-256 signature of `message`.
pub fn signature_holds(key: &VerifyingKey, message: &str, der: &[u8]) -> bool {
    Signature::from_der(der)
        .map(|sig| key.verify(message.as_bytes(), &sig).is_ok())
        .unwrap_or(false)
}

// ---------------------------------------------------------------- the bundle

/// What `farmops export-evidence` writes and `farmops verify` reads.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Bundle {
    pub format: String,
    pub farm_id: Uuid,
    /// The first entry's sequence number (1 for the whole chain).
    pub from_seq: i64,
    /// The last entry's sequence number.
    pub to_seq: i64,
    /// The stored hash of entry `from_seq - 1` (the genesis hash when `from_seq` is 1); the
    /// signed checkpoints anchor it.
    pub prev_hash: String,
    pub exported_at: String,
    /// The signing key the exporter knows of (informative: the auditor supplies the trusted key).
    pub public_key_fingerprint: Option<String>,
    pub public_key_pem: Option<String>,
    pub entries: Vec<BundleEntry>,
    pub checkpoints: Vec<BundleCheckpoint>,
    /// AI-written source rows of the farm that have no chain entry (written with the chain's
    /// triggers off): each is a failure.
    pub unchained: Vec<Unchained>,
}

/// One chain entry: its stored hash, and the field values re-derived from the LIVE source row
/// (`None`: the source row is gone).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BundleEntry {
    pub seq: i64,
    pub kind: String,
    pub source_id: String,
    pub fields: Option<Vec<Option<String>>>,
    pub hash: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BundleCheckpoint {
    pub seq: i64,
    pub hash: String,
    pub signed_at: String,
    pub key_fingerprint: String,
    pub algorithm: String,
    /// DER, hex.
    pub signature: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Unchained {
    pub kind: String,
    pub source_id: String,
}

/// The first thing wrong with a bundle: the sequence number it concerns (if any) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub seq: Option<i64>,
    pub what: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.seq {
            Some(seq) => write!(f, "seq {seq}: {}", self.what),
            None => write!(f, "{}", self.what),
        }
    }
}

/// What a bundle that verifies proves.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Verified {
    pub farm_id: Uuid,
    pub from_seq: i64,
    pub to_seq: i64,
    pub entries: usize,
    pub checkpoints: usize,
    /// The last entry a signed checkpoint covers (entries after it are chained, not yet signed).
    pub signed_through: Option<i64>,
    pub head_hash: String,
}

/// The key the auditor trusts, given out of band.
pub enum TrustedKey {
    /// The public key itself (PEM).
    Pem(String),
    /// Its fingerprint: the bundle's `public_key_pem` is used if it has this fingerprint.
    Fingerprint(String),
}

fn fail<T>(seq: impl Into<Option<i64>>, what: impl Into<String>) -> Result<T, Failure> {
    Err(Failure {
        seq: seq.into(),
        what: what.into(),
    })
}

fn hash32(hex_text: &str) -> Option<[u8; 32]> {
    hex::decode(hex_text).ok()?.try_into().ok()
}

/// Re-computes every entry's hash from its fields, from the anchor on: chain continuity, each
/// stored hash, ledger balance arithmetic and the bundle's `to_seq`. Returns the hashes by
/// sequence number, the anchor (`from_seq - 1`) first.
fn rehash(bundle: &Bundle) -> Result<Vec<[u8; 32]>, Failure> {
    if bundle.from_seq < 1 {
        return fail(None, "from_seq must be at least 1");
    }
    let mut prev = if bundle.from_seq == 1 {
        GENESIS
    } else {
        hash32(&bundle.prev_hash).ok_or_else(|| Failure {
            seq: Some(bundle.from_seq - 1),
            what: "prev_hash is not 32 bytes of hex".into(),
        })?
    };
    if bundle.from_seq == 1 && bundle.prev_hash != hex::encode(GENESIS) {
        return fail(
            0,
            "the chain must start from the genesis hash (32 zero bytes)",
        );
    }
    // hashes by seq (the anchor included) for the checkpoints
    let mut computed: Vec<[u8; 32]> = Vec::with_capacity(bundle.entries.len() + 1);
    computed.push(prev);
    let mut balance: Option<i64> = (bundle.from_seq == 1).then_some(0);
    let mut expected = bundle.from_seq;
    for entry in &bundle.entries {
        if entry.seq != expected {
            return if entry.seq > expected {
                fail(expected, "missing: the chain has a gap here")
            } else {
                fail(
                    entry.seq,
                    format!("out of order: expected seq {expected} next"),
                )
            };
        }
        let Some(fields) = &entry.fields else {
            return fail(
                entry.seq,
                format!(
                    "the {} source row {} is missing",
                    entry.kind, entry.source_id
                ),
            );
        };
        let text = canonical(
            bundle.farm_id,
            entry.seq,
            &entry.kind,
            &entry.source_id,
            fields,
        )
        .or_else(|e| fail(entry.seq, e))?;
        let hash = entry_hash(&prev, &text);
        let Some(stored) = hash32(&entry.hash) else {
            return fail(entry.seq, "its stored hash is not 32 bytes of hex");
        };
        if hash != stored {
            return fail(
                entry.seq,
                format!(
                    "the {} {} does not hash to its chain hash (computed {}, stored {}): the entry or an earlier one was changed",
                    entry.kind,
                    entry.source_id,
                    hex::encode(hash),
                    entry.hash
                ),
            );
        }
        if entry.kind == "ledger" {
            let int = |i: usize| {
                fields
                    .get(i)
                    .cloned()
                    .flatten()
                    .and_then(|v| v.parse::<i64>().ok())
            };
            let (Some(delta), Some(after)) = (int(2), int(3)) else {
                return fail(entry.seq, "a ledger entry without a delta or a balance");
            };
            if let Some(before) = balance
                && before + delta != after
            {
                return fail(
                    entry.seq,
                    format!(
                        "ledger row {}: balance {before} + delta {delta} is not balance_after {after}",
                        entry.source_id
                    ),
                );
            }
            if after < 0 {
                return fail(
                    entry.seq,
                    format!("ledger row {}: negative balance", entry.source_id),
                );
            }
            balance = Some(after);
        }
        computed.push(hash);
        prev = hash;
        expected += 1;
    }
    if expected - 1 != bundle.to_seq {
        return fail(
            expected,
            format!(
                "the bundle says it runs to seq {} but its entries end at {}",
                bundle.to_seq,
                expected - 1
            ),
        );
    }
    Ok(computed)
}

/// Verifies a bundle with no database: the trusted key, chain continuity, every entry's hash
/// re-computed from its fields, ledger balance arithmetic, every checkpoint's hash at its
/// sequence number and its signature, and no unchained source row. Returns the first failure.
pub fn verify(bundle: &Bundle, trusted: &TrustedKey) -> Result<Verified, Failure> {
    if bundle.format != BUNDLE_FORMAT {
        return fail(None, format!("not a {BUNDLE_FORMAT} bundle"));
    }
    let (key, key_fingerprint) = match trusted {
        TrustedKey::Pem(pem) => public_key_from_pem(pem).or_else(|e| fail(None, e))?,
        TrustedKey::Fingerprint(fp) => {
            let Some(pem) = &bundle.public_key_pem else {
                return fail(
                    None,
                    "the bundle carries no public key to match the fingerprint",
                );
            };
            let (key, actual) = public_key_from_pem(pem).or_else(|e| fail(None, e))?;
            if !actual.eq_ignore_ascii_case(fp.trim()) {
                return fail(
                    None,
                    format!(
                        "the bundle's public key has fingerprint {actual}, not the trusted {}",
                        fp.trim()
                    ),
                );
            }
            (key, actual)
        }
    };
    let computed = rehash(bundle)?;
    let head = *computed.last().unwrap_or(&GENESIS);
    let mut last_checkpoint: Option<(i64, &str)> = None;
    for cp in &bundle.checkpoints {
        if let Some((seq, at)) = last_checkpoint
            && (cp.seq <= seq || cp.signed_at.as_str() < at)
        {
            return fail(
                cp.seq,
                format!("checkpoint does not extend the checkpoint at seq {seq}"),
            );
        }
        let at_seq = signed_hash_holds(bundle, &computed, cp.seq, &cp.hash)?;
        if cp.algorithm != ALGORITHM {
            return fail(
                cp.seq,
                format!("checkpoint algorithm {} is not {ALGORITHM}", cp.algorithm),
            );
        }
        if !cp.key_fingerprint.eq_ignore_ascii_case(&key_fingerprint) {
            return fail(
                cp.seq,
                format!(
                    "checkpoint signed by key {}, not the trusted key {key_fingerprint}",
                    cp.key_fingerprint
                ),
            );
        }
        let message = checkpoint_message(bundle.farm_id, cp.seq, at_seq, &cp.signed_at);
        let signature = hex::decode(&cp.signature).unwrap_or_default();
        if !signature_holds(&key, &message, &signature) {
            return fail(
                cp.seq,
                "the checkpoint's signature does not verify with the trusted key",
            );
        }
        last_checkpoint = Some((cp.seq, cp.signed_at.as_str()));
    }
    all_chained(bundle)?;
    Ok(Verified {
        farm_id: bundle.farm_id,
        from_seq: bundle.from_seq,
        to_seq: bundle.to_seq,
        entries: bundle.entries.len(),
        checkpoints: bundle.checkpoints.len(),
        signed_through: last_checkpoint.map(|(seq, _)| seq),
        head_hash: hex::encode(head),
    })
}

/// The re-computed hash at `seq`, when the checkpoint's signed `hash` is that hash.
fn signed_hash_holds<'a>(
    bundle: &Bundle,
    computed: &'a [[u8; 32]],
    seq: i64,
    hash: &str,
) -> Result<&'a [u8; 32], Failure> {
    let index = seq - (bundle.from_seq - 1);
    let Some(at_seq) = usize::try_from(index).ok().and_then(|i| computed.get(i)) else {
        return fail(
            seq,
            "a signed checkpoint covers this entry, which the bundle does not have (the chain was cut)",
        );
    };
    if hash32(hash) != Some(*at_seq) {
        return fail(
            seq,
            format!(
                "the signed checkpoint's hash {hash} is not the chain's hash {} here",
                hex::encode(at_seq)
            ),
        );
    }
    Ok(at_seq)
}

/// No AI-written source row of the farm is outside the chain.
fn all_chained(bundle: &Bundle) -> Result<(), Failure> {
    match bundle.unchained.first() {
        Some(u) => fail(
            None,
            format!(
                "the {} source row {} has no chain entry (written outside the chain)",
                u.kind, u.source_id
            ),
        ),
        None => Ok(()),
    }
}

/// What the evidence page checks with no key: the live rows re-hash to the stored chain
/// (continuity, every hash, balance arithmetic), the chain's hash at the latest signed
/// checkpoint (`seq`, `hash`) is the hash that was signed, and no AI-written row is outside the
/// chain. The signatures are the auditor's to check, offline, with the key they trust
/// ([`verify`]).
pub fn check_live_rows(bundle: &Bundle, checkpoint: Option<(i64, &str)>) -> Result<(), Failure> {
    let computed = rehash(bundle)?;
    if let Some((seq, hash)) = checkpoint {
        signed_hash_holds(bundle, &computed, seq, hash)?;
    }
    all_chained(bundle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FARM: &str = "11111111-1111-4111-8111-111111111111";

    /// The golden vectors (`shared/fixtures/evidence-chain-golden.json`): fixed fields, their
    /// canonical text and hashes. `shared/tests/governance/chain.rs` checks the database's
    /// encoding against the same file.
    pub const GOLDEN: &str = include_str!("../../fixtures/evidence-chain-golden.json");

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
}
