//! The evidence bundle of one farm (`farmops export-evidence`, `GET
//! /farms/{farm_id}/evidence/export`): the chain entries in a range with their stored hashes and
//! the field values re-derived from the LIVE source rows (so an edited or deleted source row
//! shows), the signed checkpoints in the range, the anchor hash before it, and the AI-written
//! source rows with no chain entry. `farmops verify` checks it offline ([`super::chain::verify`]).

use super::chain::{self, Bundle, BundleCheckpoint, BundleEntry, Unchained};
use crate::{
    db::{TenantTx, Type},
    error::{Error, Result},
};

/// The statement reading a range of entries with their live source rows.
const ENTRIES_SQL: &str = "
  SELECT c.seq, c.kind, c.source_id, encode(c.hash, 'hex'), s.vals
    FROM evidence_chain c
    LEFT JOIN evidence_sources($1) s ON s.kind = c.kind AND s.source_id = c.source_id
   WHERE c.farm_id = $1 AND c.seq BETWEEN $2 AND $3
   ORDER BY c.seq";

/// Exports the transaction's farm's chain from `from` (default 1) to `to` (default the head).
#[tracing::instrument(skip(tx, public_key_pem), fields(farm_id = %tx.farm_id()))]
pub async fn export_bundle(
    tx: &TenantTx,
    from: Option<i64>,
    to: Option<i64>,
    public_key_fingerprint: Option<String>,
    public_key_pem: Option<String>,
) -> Result<Bundle> {
    let farm = tx.farm_id();
    let head = tx
        .query_opt(
            "SELECT greatest(coalesce((SELECT max(c.seq) FROM evidence_chain c WHERE c.farm_id = f.id), 0),
                             coalesce((SELECT max(c.seq) FROM evidence_checkpoints c WHERE c.farm_id = f.id), 0)),
                    evidence_ts(now())
               FROM farms f WHERE f.id = $1",
            &[(&farm, Type::UUID)],
        )
        .await?
        .ok_or(Error::NotFound("farm"))?;
    let (last, exported_at): (i64, String) = (head.get(0), head.get(1));
    let from = from.unwrap_or(1).max(1);
    let to = to.unwrap_or(last).min(last);
    let prev_hash = if from == 1 {
        hex::encode(chain::GENESIS)
    } else {
        tx.query_opt(
            "SELECT encode(hash, 'hex') FROM evidence_chain WHERE farm_id = $1 AND seq = $2",
            &[(&farm, Type::UUID), (&(from - 1), Type::INT8)],
        )
        .await?
        .map(|r| r.get(0))
        .unwrap_or_default()
    };
    let entries = tx
        .query(
            ENTRIES_SQL,
            &[(&farm, Type::UUID), (&from, Type::INT8), (&to, Type::INT8)],
        )
        .await?
        .iter()
        .map(|r| BundleEntry {
            seq: r.get(0),
            kind: r.get(1),
            source_id: r.get(2),
            hash: r.get(3),
            fields: r.get(4),
        })
        .collect();
    let checkpoints = tx
        .query(
            "SELECT seq, encode(hash, 'hex'), evidence_ts(signed_at), key_fingerprint, algorithm,
                    encode(signature, 'hex')
               FROM evidence_checkpoints WHERE farm_id = $1 AND seq BETWEEN $2 AND $3 ORDER BY seq",
            &[(&farm, Type::UUID), (&from, Type::INT8), (&to, Type::INT8)],
        )
        .await?
        .iter()
        .map(|r| BundleCheckpoint {
            seq: r.get(0),
            hash: r.get(1),
            signed_at: r.get(2),
            key_fingerprint: r.get(3),
            algorithm: r.get(4),
            signature: r.get(5),
        })
        .collect();
    let unchained = tx
        .query(
            "SELECT s.kind, s.source_id FROM evidence_sources($1) s
              WHERE NOT EXISTS (SELECT 1 FROM evidence_chain c
                                 WHERE c.farm_id = $1 AND c.kind = s.kind AND c.source_id = s.source_id)
              ORDER BY s.kind, s.source_id",
            &[(&farm, Type::UUID)],
        )
        .await?
        .iter()
        .map(|r| Unchained {
            kind: r.get(0),
            source_id: r.get(1),
        })
        .collect();
    Ok(Bundle {
        format: chain::BUNDLE_FORMAT.to_string(),
        farm_id: farm,
        from_seq: from,
        to_seq: to,
        prev_hash,
        exported_at,
        public_key_fingerprint,
        public_key_pem,
        entries,
        checkpoints,
        unchained,
    })
}
