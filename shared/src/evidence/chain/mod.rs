//! The per-farm evidence hash chain (migrations 0090 and 0096, `docs/evidence-chain.md`): the canonical
//! encoding of an entry, its hash, the signed checkpoint message, and the offline verification
//! of an exported bundle. Pure: no database, no clock, no network (`farmops verify` links only
//! this and the signature check).
//!
//! The encoding here and `evidence_canonical()` in the migration are the two definitions of
//! one format; the golden vectors (this module's tests and
//! `shared/tests/governance/chain.rs`) keep them equal.

mod bundle;
mod encoding;
mod signature;
#[cfg(test)]
mod tests;
mod verify;

pub use bundle::{Bundle, BundleCheckpoint, BundleEntry, Unchained};
pub use encoding::{
    ALGORITHM, BUNDLE_FORMAT, CHECKPOINT_VERSION, ENTRY_VERSION, GENESIS, canonical,
    checkpoint_message, entry_hash, escape, keys, leg_positions,
};
pub use signature::{fingerprint, public_key_from_pem, signature_holds};
pub use verify::{Failure, TrustedKey, Verified, check_live_rows, verify};
