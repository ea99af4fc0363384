//! The Bedrock client calls with the ASSUMED role's credentials: a local STS (moto's server,
//! from PyPI, on 127.0.0.1) answers AssumeRole, and a local Bedrock stub records the SigV4
//! `Authorization` header of each request it receives.

use std::sync::{Arc, Mutex};

use crate::moto::LocalSts;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::{Credentials, provider::SharedCredentialsProvider};
use farmops::aws::{BedrockSettings, bedrock_client_from};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

const BASE_KEY: &str = "AKIDBASEEXAMPLE0001";

/// A Bedrock runtime stub: answers every request with a Titan v2 embedding and records
/// (request line, Authorization header).
async fn bedrock_stub() -> (String, Arc<Mutex<Vec<(String, String)>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let record = record.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let header = |name: &str| {
                    head.lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                        })
                        .unwrap_or_default()
                };
                let length: usize = header("content-length").parse().unwrap_or(0);
                while buf.len() < head_end + length {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let line = head.lines().next().unwrap_or_default().to_string();
                record.lock().unwrap().push((line, header("authorization")));
                let body = r#"{"embedding":[0.5,0.25],"inputTextTokenCount":2}"#;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (url, seen)
}

/// The default loader (clock, sleep, HTTP client) with fixed base credentials: the
/// function's execution role.
async fn base_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            BASE_KEY,
            "base-secret",
            None,
            None,
            "execution-role",
        )))
        .load()
        .await
}

fn credential_key(authorization: &str) -> &str {
    let start = authorization
        .find("Credential=")
        .expect("SigV4 Authorization")
        + 11;
    authorization[start..].split('/').next().unwrap()
}

async fn embed(client: &aws_sdk_bedrockruntime::Client) {
    let out = client
        .invoke_model()
        .model_id("amazon.titan-embed-text-v2:0")
        .content_type("application/json")
        .body(aws_smithy_types::Blob::new(
            r#"{"inputText":"maize rust","dimensions":1024,"normalize":true}"#,
        ))
        .send()
        .await
        .expect("the stub answers");
    assert!(String::from_utf8_lossy(out.body().as_ref()).contains("embedding"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bedrock_requests_are_signed_with_the_assumed_role_not_the_base_credentials() {
    let sts = tokio::task::spawn_blocking(LocalSts::start).await.unwrap();
    let (bedrock_url, seen) = bedrock_stub().await;
    let settings = BedrockSettings {
        region: Some("us-east-1".into()),
        role_arn: Some("arn:aws:iam::123456789012:role/farmops-dev-bedrock-us-east-1".into()),
        endpoint: Some(bedrock_url.clone()),
        sts_endpoint: Some(sts.url.clone()),
        ..BedrockSettings::default()
    };
    let client = bedrock_client_from(&settings, &base_config().await).await;
    embed(&client).await;
    embed(&client).await;

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen[0]
            .0
            .starts_with("POST /model/amazon.titan-embed-text-v2%3A0/invoke"),
        "{}",
        seen[0].0
    );
    let assumed = credential_key(&seen[0].1).to_string();
    assert_ne!(
        assumed, BASE_KEY,
        "signed with the base credentials: {}",
        seen[0].1
    );
    assert!(
        assumed.starts_with("ASIA"),
        "temporary credentials from STS, got {assumed}"
    );
    assert!(
        seen[0].1.contains("/us-east-1/bedrock/aws4_request"),
        "{}",
        seen[0].1
    );
    assert_eq!(
        credential_key(&seen[1].1),
        assumed,
        "assumed credentials are cached between calls"
    );

    // control: without a role the SAME client set-up signs with the base key
    let (plain_url, plain_seen) = bedrock_stub().await;
    let direct = BedrockSettings {
        role_arn: None,
        endpoint: Some(plain_url),
        ..settings
    };
    embed(&bedrock_client_from(&direct, &base_config().await).await).await;
    let plain = plain_seen.lock().unwrap().clone();
    assert_eq!(credential_key(&plain[0].1), BASE_KEY);
}
