//! A local AWS KMS stub speaking KMS's JSON protocol (`POST /`, `X-Amz-Target:
//! TrentService.Sign` or `TrentService.GetPublicKey`, `application/x-amz-json-1.1`) on
//! loopback, signing with a P-256 key it holds, and recording every request. Driven by the
//! REAL `aws-sdk-kms` client ([`KmsStub::signer`]).

use std::sync::{Arc, Mutex};

use anyhow::Result;
use base64::Engine;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use crate::evidence::{
    kms::KmsSigner,
    signing::{CheckpointSigner, KeyFileSigner},
};

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
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let key = Arc::new(KeyFileSigner::from_bytes(&secret)?);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (seen, signer) = (Arc::clone(&requests), Arc::clone(&key));
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (seen, signer) = (Arc::clone(&seen), Arc::clone(&signer));
                tokio::spawn(async move {
                    let Some((target, body)) = read_request(&mut socket).await else {
                        return;
                    };
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
                    let payload = answer.to_string();
                    let head = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\nconnection: close\r\nx-amzn-requestid: stub\r\n\r\n",
                        payload.len()
                    );
                    let _ = socket.write_all(head.as_bytes()).await;
                    let _ = socket.write_all(payload.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
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

async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<(String, Value)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let target = header("x-amz-target").unwrap_or_default();
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < header_end + length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = serde_json::from_slice(&buf[header_end..]).unwrap_or(Value::Null);
    Some((target, body))
}
