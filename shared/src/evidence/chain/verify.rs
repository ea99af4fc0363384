//! Offline verification of a bundle: re-hashing, the signed checkpoints against a trusted key,
//! and the live-row check the evidence page shares.

use serde::Serialize;
use uuid::Uuid;

use super::{
    ALGORITHM, BUNDLE_FORMAT, Bundle, GENESIS, canonical, checkpoint_message, entry_hash,
    leg_positions, public_key_from_pem, signature_holds,
};

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

/// How a failure names the row that carries a leg.
fn leg_name(kind: &str) -> &'static str {
    if kind == "ledger" {
        "ledger row"
    } else {
        "the first hold of run"
    }
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
        if let Some((delta_at, after_at)) = leg_positions(&entry.kind) {
            let int = |i: usize| {
                fields
                    .get(i)
                    .cloned()
                    .flatten()
                    .and_then(|v| v.parse::<i64>().ok())
            };
            let (Some(delta), Some(after)) = (int(delta_at), int(after_at)) else {
                return fail(entry.seq, "a ledger leg without a delta or a balance");
            };
            if let Some(before) = balance
                && before + delta != after
            {
                return fail(
                    entry.seq,
                    format!(
                        "{} {}: balance {before} + delta {delta} is not balance_after {after}",
                        leg_name(&entry.kind),
                        entry.source_id
                    ),
                );
            }
            if after < 0 {
                return fail(
                    entry.seq,
                    format!(
                        "{} {}: negative balance",
                        leg_name(&entry.kind),
                        entry.source_id
                    ),
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
