//! Public keys and signatures: fingerprints, PEM keys, the ECDSA P-256 check.

use p256::ecdsa::{Signature, VerifyingKey, signature::Verifier};
use p256::pkcs8::{DecodePublicKey, EncodePublicKey};
use sha2::{Digest, Sha256};

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
