//! The exported bundle: entries with their re-derived fields, checkpoints, unchained rows.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

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
