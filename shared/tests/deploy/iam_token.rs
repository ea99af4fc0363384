//! The RDS IAM auth token our pool presents, for a fixed clock and fixed credentials.

use std::{
    collections::HashMap,
    time::{Duration, UNIX_EPOCH},
};

use aws_config::SdkConfig;
use aws_credential_types::{Credentials, provider::SharedCredentialsProvider};
use aws_smithy_async::time::StaticTimeSource;
use farmops::db::{PasswordProvider, iam::IamTokenPassword};

fn sdk(at_secs: u64) -> SdkConfig {
    SdkConfig::builder()
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "test",
        )))
        .time_source(StaticTimeSource::new(
            UNIX_EPOCH + Duration::from_secs(at_secs),
        ))
        .build()
}

fn split(token: &str) -> (&str, HashMap<String, String>) {
    let (endpoint, query) = token.split_once("/?").expect("host:port/?query");
    let params = query
        .split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    (endpoint, params)
}

const PROXY: &str = "farmops-dev-proxy.proxy-abcdefghijkl.eu-west-1.rds.amazonaws.com";

#[tokio::test]
async fn token_for_the_proxy_endpoint_has_every_signed_parameter() {
    // 2026-11-29T00:00:00Z
    let provider =
        IamTokenPassword::new(PROXY, 5432, "farmops_app", "eu-west-1", sdk(1_795_910_400)).unwrap();
    let token = provider.password().await.unwrap().expect("a password");
    let (endpoint, p) = split(&token);
    assert_eq!(endpoint, format!("{PROXY}:5432"));
    assert_eq!(p["Action"], "connect");
    assert_eq!(p["DBUser"], "farmops_app");
    assert_eq!(p["X-Amz-Algorithm"], "AWS4-HMAC-SHA256");
    assert_eq!(
        p["X-Amz-Credential"], "AKIDEXAMPLE%2F20261129%2Feu-west-1%2Frds-db%2Faws4_request",
        "key, date, the EXPLICIT region (not us-east-1), service rds-db"
    );
    assert_eq!(p["X-Amz-Date"], "20261129T000000Z");
    assert_eq!(
        p["X-Amz-Expires"], "900",
        "15 minutes, the most RDS accepts"
    );
    assert_eq!(p["X-Amz-SignedHeaders"], "host");
    let signature = &p["X-Amz-Signature"];
    assert_eq!(signature.len(), 64);
    assert!(signature.chars().all(|c| c.is_ascii_hexdigit()));

    // deterministic for the same clock; a new one for every later connection
    let again = provider.password().await.unwrap().unwrap();
    assert_eq!(again, token);
    let later = IamTokenPassword::new(PROXY, 5432, "farmops_app", "eu-west-1", sdk(1_795_910_460))
        .unwrap()
        .password()
        .await
        .unwrap()
        .unwrap();
    assert_ne!(split(&later).1["X-Amz-Signature"], *signature);
    // the signature covers host, port and user
    for (host, port, user) in [(PROXY, 5433, "farmops_app"), (PROXY, 5432, "farmops_owner")] {
        let other = IamTokenPassword::new(host, port, user, "eu-west-1", sdk(1_795_910_400))
            .unwrap()
            .password()
            .await
            .unwrap()
            .unwrap();
        assert_ne!(
            split(&other).1["X-Amz-Signature"],
            *signature,
            "{port} {user}"
        );
    }
}

#[tokio::test]
async fn matches_the_sdk_published_test_vector() {
    // aws-sdk-rds's own vector (auth_token.rs): same inputs through OUR provider, same token.
    let sdk = SdkConfig::builder()
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "akid", "secret", None, None, "test",
        )))
        .time_source(StaticTimeSource::new(
            UNIX_EPOCH + Duration::from_secs(1_724_709_600),
        ))
        .build();
    let token = IamTokenPassword::new(
        "prod-instance.us-east-1.rds.amazonaws.com",
        3306,
        "peccy",
        "us-east-1",
        sdk,
    )
    .unwrap()
    .token()
    .await
    .unwrap();
    assert_eq!(
        token,
        "prod-instance.us-east-1.rds.amazonaws.com:3306/?Action=connect&DBUser=peccy&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=akid%2F20240826%2Fus-east-1%2Frds-db%2Faws4_request&X-Amz-Date=20240826T220000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=dd0cba843009474347af724090233265628ace491ea17ce3eb3da098b983ad89"
    );
}

#[tokio::test]
async fn the_pool_signs_for_the_host_port_and_user_of_its_url() {
    let url = format!("postgres://farmops_app@{PROXY}:6432/farmops");
    let pg: tokio_postgres::Config = url.parse().unwrap();
    let token = IamTokenPassword::for_connection(&pg, "eu-west-1", sdk(1_795_910_400))
        .unwrap()
        .token()
        .await
        .unwrap();
    let (endpoint, p) = split(&token);
    assert_eq!(endpoint, format!("{PROXY}:6432"));
    assert_eq!(p["DBUser"], "farmops_app");
    // a URL without a user or a TCP host cannot be signed for
    for bad in [
        format!("postgres://{PROXY}/farmops"),
        "postgres://u@%2Ftmp/db".to_string(),
    ] {
        let pg: tokio_postgres::Config = bad.parse().unwrap();
        assert!(
            IamTokenPassword::for_connection(&pg, "eu-west-1", sdk(0)).is_err(),
            "{bad}"
        );
    }
}
