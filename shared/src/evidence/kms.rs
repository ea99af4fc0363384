//! The AWS KMS checkpoint signer: an asymmetric `ECC_NIST_P256` key used with `kms:Sign`
//! (`ECDSA_SHA_256`, `MessageType=RAW`: KMS hashes the message with SHA-256), its public key
//! read once with `GetPublicKey`. The reconcile function's role may only `kms:Sign` with the
//! key (template.yaml); the tests drive this client against [`crate::testing::kms`].

use async_trait::async_trait;
use aws_sdk_kms::{
    primitives::Blob,
    types::{MessageType, SigningAlgorithmSpec},
};
use tokio::sync::OnceCell;

use super::signing::CheckpointSigner;
use crate::error::{Error, Result};

pub struct KmsSigner {
    client: aws_sdk_kms::Client,
    key_id: String,
    public_key: OnceCell<Vec<u8>>,
    fingerprint: Option<String>,
}

impl KmsSigner {
    pub fn new(client: aws_sdk_kms::Client, key_id: impl Into<String>) -> KmsSigner {
        KmsSigner {
            client,
            key_id: key_id.into(),
            public_key: OnceCell::new(),
            fingerprint: None,
        }
    }

    /// The key's fingerprint, known in advance (a stack parameter): signing then needs only
    /// `kms:Sign`.
    pub fn with_fingerprint(self, fingerprint: impl Into<String>) -> KmsSigner {
        KmsSigner {
            fingerprint: Some(fingerprint.into().trim().to_ascii_lowercase()),
            ..self
        }
    }

    /// A client from the shared AWS config, with `endpoint` overriding KMS's (tests, a VPC
    /// endpoint's DNS name).
    pub fn client_from(
        base: &aws_config::SdkConfig,
        endpoint: Option<&str>,
    ) -> aws_sdk_kms::Client {
        let mut builder = aws_sdk_kms::config::Builder::from(base);
        if let Some(endpoint) = endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        aws_sdk_kms::Client::from_conf(builder.build())
    }
}

fn kms_error(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Unexpected(
        format!(
            "KMS {what}: {}",
            aws_smithy_types::error::display::DisplayErrorContext(e)
        )
        .into(),
    )
}

#[async_trait]
impl CheckpointSigner for KmsSigner {
    async fn public_key_der(&self) -> Result<Vec<u8>> {
        self.public_key
            .get_or_try_init(|| async {
                let out = self
                    .client
                    .get_public_key()
                    .key_id(&self.key_id)
                    .send()
                    .await
                    .map_err(|e| kms_error("GetPublicKey", e))?;
                out.public_key
                    .map(Blob::into_inner)
                    .ok_or_else(|| Error::unexpected("KMS GetPublicKey answered no key"))
            })
            .await
            .cloned()
    }

    async fn fingerprint(&self) -> Result<String> {
        match &self.fingerprint {
            Some(fp) => Ok(fp.clone()),
            None => Ok(super::chain::fingerprint(&self.public_key_der().await?)),
        }
    }

    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        let out = self
            .client
            .sign()
            .key_id(&self.key_id)
            .message(Blob::new(message))
            .message_type(MessageType::Raw)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await
            .map_err(|e| kms_error("Sign", e))?;
        out.signature
            .map(Blob::into_inner)
            .ok_or_else(|| Error::unexpected("KMS Sign answered no signature"))
    }
}
