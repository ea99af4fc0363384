//! The evidence chain as the evidence page shows it (#19 item 4): the farm's chain head, its
//! latest signed checkpoint and, when asked (`verify_chain=true`), whether the live rows still
//! match them.
//!
//! Head and checkpoint are one indexed statement. The live-row check re-derives every entry up
//! to the head from the source rows (the export's statement, [`super::export::export_bundle`])
//! and re-hashes it ([`chain::check_live_rows`]): its cost follows the farm's whole history, so
//! the page runs it only on request, and the auditor's full check with signatures stays
//! `farmops verify` on an exported bundle.

use serde::Serialize;

use super::chain;
use crate::{
    db::{TenantTx, Type},
    error::Result,
};

/// The chain's state on the evidence page.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ChainStatus {
    /// The farm's last entry (seq 0 and the genesis hash while the chain is empty).
    pub head_seq: i64,
    pub head_hash: String,
    /// The latest signed checkpoint; none until reconcile first signs the farm's head.
    pub checkpoint: Option<CheckpointSummary>,
    pub live_rows: LiveRows,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CheckpointSummary {
    pub seq: i64,
    pub hash: String,
    pub signed_at: String,
    pub key_fingerprint: String,
}

/// Whether the live rows still hash to the stored chain and the signed checkpoint.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum LiveRows {
    /// Not checked on this request (ask with `verify_chain=true`).
    NotChecked,
    /// Every entry up to `through` re-derives from its live row to its stored hash, the
    /// checkpoint's hash is the chain's, and no AI-written row is outside the chain.
    Match { through: i64 },
    /// The first thing wrong: the entry it concerns (none: not one entry) and what.
    Mismatch { seq: Option<i64>, what: String },
}

/// The tenant farm's chain head, latest checkpoint and, when `verify` is set, the live-row check.
pub async fn chain_status(tx: &TenantTx, verify: bool) -> Result<ChainStatus> {
    let farm = tx.farm_id();
    let row = tx
        .query_one(
            "SELECT coalesce(h.seq, 0), coalesce(encode(h.hash, 'hex'), $2),
                    k.seq, encode(k.hash, 'hex'), evidence_ts(k.signed_at), k.key_fingerprint
               FROM (SELECT 1) one
               LEFT JOIN LATERAL (SELECT seq, hash FROM evidence_chain WHERE farm_id = $1
                                   ORDER BY seq DESC LIMIT 1) h ON true
               LEFT JOIN LATERAL (SELECT seq, hash, signed_at, key_fingerprint
                                    FROM evidence_checkpoints WHERE farm_id = $1
                                   ORDER BY seq DESC LIMIT 1) k ON true",
            &[
                (&farm, Type::UUID),
                (&hex::encode(chain::GENESIS), Type::TEXT),
            ],
        )
        .await?;
    let checkpoint = row.get::<_, Option<i64>>(2).map(|seq| CheckpointSummary {
        seq,
        hash: row.get(3),
        signed_at: row.get(4),
        key_fingerprint: row.get(5),
    });
    let head_seq: i64 = row.get(0);
    let live_rows = if verify {
        let bundle = super::export::export_bundle(tx, None, None, None, None).await?;
        let signed = checkpoint.as_ref().map(|c| (c.seq, c.hash.as_str()));
        match chain::check_live_rows(&bundle, signed) {
            Ok(()) => LiveRows::Match {
                through: bundle.to_seq,
            },
            Err(failure) => LiveRows::Mismatch {
                seq: failure.seq,
                what: failure.what,
            },
        }
    } else {
        LiveRows::NotChecked
    };
    Ok(ChainStatus {
        head_seq,
        head_hash: row.get(1),
        checkpoint,
        live_rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_rows_serialise_with_their_status() {
        let cases = [
            (LiveRows::NotChecked, r#"{"status":"not_checked"}"#),
            (
                LiveRows::Match { through: 7 },
                r#"{"status":"match","through":7}"#,
            ),
            (
                LiveRows::Mismatch {
                    seq: Some(3),
                    what: "changed".into(),
                },
                r#"{"status":"mismatch","seq":3,"what":"changed"}"#,
            ),
        ];
        for (value, json) in cases {
            assert_eq!(serde_json::to_string(&value).unwrap(), json);
        }
    }
}
