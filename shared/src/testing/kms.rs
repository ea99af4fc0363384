//! A local AWS KMS stub speaking KMS's JSON protocol (`POST /`, `X-Amz-Target:
//! TrentService.Sign` or `TrentService.GetPublicKey`, `application/x-amz-json-1.1`) on
//! loopback, signing with a P-256 key it holds, and recording every request. Driven by the
//! REAL `aws-sdk-kms` client ([`KmsStub::signer`]).

use std::sync::{Arc, Mutex};

use super::stub::Reply;
use crate::evidence::{
    kms::KmsSigner,
    signing::{CheckpointSigner, KeyFileSigner},
};
use anyhow::Result;
use base64::Engine;
use serde_json::{Value, json};

pub const KEY_ID: &str =
    "arn:aws:kms:eu-west-1:111122223333:key/11111111-2222-3333-4444-555555555555";

pub struct KmsStub {
    pub url: String,
    /// (X-Amz-Target, JSON body) of every request.
    pub requests: Arc<Mutex<Vec<(String, Value)>>>,
    /// The key the stub signs with (its public key is what GetPublicKey answers).
    pub key: Arc<KeyFileSigner>,
}

impl KmsStub {
    pub async fn start(secret: [u8; 32]) -> Result<KmsStub> {
        let key = Arc::new(KeyFileSigner::from_bytes(&secret)?);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (seen, signer) = (Arc::clone(&requests), Arc::clone(&key));
        let url = super::stub::serve(move |request| {
            let (seen, signer) = (Arc::clone(&seen), Arc::clone(&signer));
            async move {
                let target = request.header("x-amz-target").unwrap_or_default();
                let body = request.body;
                seen.lock().unwrap().push((target.clone(), body.clone()));
                let b64 = base64::engine::general_purpose::STANDARD;
                let (status, answer) = match target.as_str() {
                    "TrentService.GetPublicKey" if body["KeyId"] == KEY_ID => (
                        200,
                        json!({
                            "KeyId": KEY_ID,
                            "PublicKey": b64.encode(signer.public_key_der().await.unwrap()),
                            "KeySpec": "ECC_NIST_P256",
                            "KeyUsage": "SIGN_VERIFY",
                            "SigningAlgorithms": ["ECDSA_SHA_256"],
                        }),
                    ),
                    "TrentService.Sign"
                        if body["KeyId"] == KEY_ID
                            && body["SigningAlgorithm"] == "ECDSA_SHA_256"
                            && body["MessageType"] == "RAW" =>
                    {
                        let message = b64
                            .decode(body["Message"].as_str().unwrap_or_default())
                            .unwrap_or_default();
                        (
                            200,
                            json!({
                                "KeyId": KEY_ID,
                                "Signature": b64.encode(signer.sign(&message).await.unwrap()),
                                "SigningAlgorithm": "ECDSA_SHA_256",
                            }),
                        )
                    }
                    _ => (
                        400,
                        json!({ "__type": "ValidationException", "message": "stub: unexpected request" }),
                    ),
                };
                Reply {
                    status,
                    content_type: "application/x-amz-json-1.1",
                    error_type: None,
                    payload: answer.to_string(),
                }
            }
        })
        .await?;
        Ok(KmsStub { url, requests, key })
    }

    /// The real KMS client pointed at this stub (dummy static credentials), as a signer.
    pub async fn signer(&self) -> KmsSigner {
        let base = super::converse::stub_sdk_config().await;
        KmsSigner::new(KmsSigner::client_from(&base, Some(&self.url)), KEY_ID)
    }

    pub fn requests(&self) -> Vec<(String, Value)> {
        self.requests.lock().unwrap().clone()
    }
}
