//! Signing a farm's chain head: the [`CheckpointSigner`] trait, the local key file
//! implementation (a PKCS#8 PEM P-256 key, which `scripts/dev-up.sh` creates), and the
//! checkpoint step reconcile runs per farm ([`sign_checkpoint`]).

use async_trait::async_trait;
use p256::ecdsa::{Signature, SigningKey, signature::Signer};
use p256::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};

use super::chain;
use crate::{
    db::{TenantTx, Type},
    error::{Error, Result},
};

/// Signs checkpoint messages with ECDSA P-256 / SHA-256 (DER signatures).
#[async_trait]
pub trait CheckpointSigner: Send + Sync {
    /// The public key as DER SubjectPublicKeyInfo.
    async fn public_key_der(&self) -> Result<Vec<u8>>;
    /// A DER signature of `message` (hashed with SHA-256 by the signer).
    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>>;
    /// The key's fingerprint ([`chain::fingerprint`] of its public key).
    async fn fingerprint(&self) -> Result<String> {
        Ok(chain::fingerprint(&self.public_key_der().await?))
    }
}

/// Where reconcile's checkpoint signer comes from:
///
/// | variable | meaning |
/// |---|---|
/// | `FARMOPS_EVIDENCE_KMS_KEY_ID` | the asymmetric KMS key (ECC_NIST_P256) that signs, in AWS |
/// | `FARMOPS_EVIDENCE_KEY_FINGERPRINT` | its fingerprint, so the function needs only `kms:Sign` (without it, `kms:GetPublicKey` once per cold start) |
/// | `FARMOPS_EVIDENCE_KMS_ENDPOINT` | another KMS endpoint (tests) |
/// | `FARMOPS_EVIDENCE_KEY_FILE` | locally: a PKCS#8 PEM P-256 key file (`scripts/dev-up.sh` creates one) |
///
/// None set: no signer (checkpoints are not signed).
///
/// The KMS client is built over the cold start's one AWS configuration (`aws`, see
/// [`crate::aws::ColdStartAws`]), loaded here only when a KMS key is named.
pub async fn signer_from_env(
    lookup: impl Fn(&str) -> Option<String>,
    aws: &crate::aws::ColdStartAws,
) -> Result<Option<std::sync::Arc<dyn CheckpointSigner>>> {
    let get = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
    if let Some(key_id) = get("FARMOPS_EVIDENCE_KMS_KEY_ID") {
        let base = aws.sdk_config(&crate::config::Env(&lookup)).await;
        let client = super::kms::KmsSigner::client_from(
            base,
            get("FARMOPS_EVIDENCE_KMS_ENDPOINT").as_deref(),
        );
        let mut signer = super::kms::KmsSigner::new(client, key_id);
        if let Some(fp) = get("FARMOPS_EVIDENCE_KEY_FINGERPRINT") {
            signer = signer.with_fingerprint(fp);
        }
        return Ok(Some(std::sync::Arc::new(signer)));
    }
    if let Some(path) = get("FARMOPS_EVIDENCE_KEY_FILE") {
        return Ok(Some(std::sync::Arc::new(KeyFileSigner::from_file(
            std::path::Path::new(&path),
        )?)));
    }
    Ok(None)
}

/// A key file: PKCS#8 PEM (`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`).
pub struct KeyFileSigner {
    key: SigningKey,
}

impl KeyFileSigner {
    pub fn from_pem(pem: &str) -> Result<KeyFileSigner> {
        let key = SigningKey::from_pkcs8_pem(pem.trim())
            .map_err(|e| Error::unexpected(format!("not a PKCS#8 P-256 private key: {e}")))?;
        Ok(KeyFileSigner { key })
    }

    pub fn from_file(path: &std::path::Path) -> Result<KeyFileSigner> {
        let pem = std::fs::read_to_string(path).map_err(|e| {
            Error::unexpected(format!("reading the key file {}: {e}", path.display()))
        })?;
        KeyFileSigner::from_pem(&pem)
    }

    /// A key from 32 fixed bytes (tests).
    pub fn from_bytes(secret: &[u8; 32]) -> Result<KeyFileSigner> {
        let key = SigningKey::from_slice(secret)
            .map_err(|e| Error::unexpected(format!("not a P-256 secret: {e}")))?;
        Ok(KeyFileSigner { key })
    }

    /// The public key as PEM (what an auditor is given).
    pub fn public_key_pem(&self) -> String {
        self.key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("a P-256 public key encodes")
    }
}

#[async_trait]
impl CheckpointSigner for KeyFileSigner {
    async fn public_key_der(&self) -> Result<Vec<u8>> {
        Ok(self
            .key
            .verifying_key()
            .to_public_key_der()
            .map_err(|e| Error::unexpected(format!("encoding the public key: {e}")))?
            .into_vec())
    }

    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        let signature: Signature = self.key.sign(message);
        Ok(signature.to_der().as_bytes().to_vec())
    }
}

/// A public key (DER SPKI) as PEM.
pub fn public_key_pem(der: &[u8]) -> Result<String> {
    use p256::pkcs8::DecodePublicKey;
    let key = p256::PublicKey::from_public_key_der(der)
        .map_err(|e| Error::unexpected(format!("not a P-256 public key: {e}")))?;
    key.to_public_key_pem(LineEnding::LF)
        .map_err(|e| Error::unexpected(format!("encoding the public key: {e}")))
}

/// A signed checkpoint just recorded.
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
pub struct Signed {
    pub seq: i64,
    pub hash: String,
    pub signed_at: String,
    pub key_fingerprint: String,
}

/// Signs the transaction's farm's chain head and records the checkpoint (append-only, through
/// `evidence_record_checkpoint`). `None`: an empty chain, or the head is already signed.
#[tracing::instrument(skip(tx, signer), fields(farm_id = %tx.farm_id()))]
pub async fn sign_checkpoint(
    tx: &TenantTx,
    signer: &dyn CheckpointSigner,
    fingerprint: &str,
) -> Result<Option<Signed>> {
    let farm = tx.farm_id();
    let row = tx
        .query_one(
            "SELECT coalesce(e.seq, 0), coalesce(e.hash, '\\x'::bytea), evidence_ts(now()),
                    coalesce((SELECT max(c.seq) FROM evidence_checkpoints c WHERE c.farm_id = $1), 0)
               FROM (SELECT 1) one
               LEFT JOIN LATERAL (SELECT seq, hash FROM evidence_chain WHERE farm_id = $1
                                   ORDER BY seq DESC LIMIT 1) e ON true",
            &[(&farm, Type::UUID)],
        )
        .await?;
    let (seq, head, signed_at, signed): (i64, Vec<u8>, String, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    if seq == 0 || seq <= signed {
        return Ok(None);
    }
    let hash: [u8; 32] = head
        .try_into()
        .map_err(|_| Error::unexpected("a chain head is 32 bytes"))?;
    let message = chain::checkpoint_message(farm, seq, &hash, &signed_at);
    let signature = signer.sign(message.as_bytes()).await?;
    let head = hash.to_vec();
    let fp = fingerprint.to_string();
    let recorded: bool = tx
        .query_one(
            "SELECT evidence_record_checkpoint($1, $2, $3, now(), $4, $5)",
            &[
                (&farm, Type::UUID),
                (&seq, Type::INT8),
                (&head, Type::BYTEA),
                (&fp, Type::TEXT),
                (&signature, Type::BYTEA),
            ],
        )
        .await?
        .get(0);
    Ok(recorded.then(|| Signed {
        seq,
        hash: hex::encode(hash),
        signed_at,
        key_fingerprint: fp,
    }))
}

/// One farm's signing in a pass of [`sign_due`].
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
pub struct FarmSigned {
    pub farm_id: uuid::Uuid,
    #[serde(flatten)]
    pub signed: Signed,
}

/// Signs the head of every farm whose chain grew since its last signed checkpoint, one
/// transaction per farm (the scheduled pass; `farmops sign-checkpoints`).
#[tracing::instrument(skip_all)]
pub async fn sign_due(
    db: &crate::db::Db,
    signer: &dyn CheckpointSigner,
) -> Result<Vec<FarmSigned>> {
    let fingerprint = signer.fingerprint().await?;
    let farms: Vec<uuid::Uuid> = {
        let client = db.client().await?;
        client
            .query_typed("SELECT farms_due_evidence_checkpoint()", &[])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    let mut out = Vec::with_capacity(farms.len());
    for farm in farms {
        let tx = db.tenant(farm).await?;
        let signed = sign_checkpoint(&tx, signer, &fingerprint).await?;
        tx.commit().await?;
        if let Some(signed) = signed {
            out.push(FarmSigned {
                farm_id: farm,
                signed,
            });
        }
    }
    Ok(out)
}
