//! The billing function's Paystack key, read with the real Secrets Manager client from a local
//! Secrets Manager (moto's server on loopback), in both forms an operator may store it.

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::{Credentials, provider::SharedCredentialsProvider};
use farmops::aws::paystack_secret_from;

use crate::moto::LocalSts;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_the_paystack_key_from_secrets_manager() {
    let moto = tokio::task::spawn_blocking(LocalSts::start).await.unwrap();
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .endpoint_url(&moto.url)
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDBILLING",
            "secret",
            None,
            None,
            "test",
        )))
        .load()
        .await;
    let client = aws_sdk_secretsmanager::Client::new(&sdk);
    for (name, stored) in [
        ("plain", "sk_live_0123456789abcdef"),
        ("key-value", r#"{"secret_key": "sk_live_0123456789abcdef"}"#),
    ] {
        let created = client
            .create_secret()
            .name(format!("paystack-{name}"))
            .secret_string(stored)
            .send()
            .await
            .unwrap();
        let key = paystack_secret_from(&sdk, created.arn().unwrap())
            .await
            .unwrap();
        assert_eq!(key.expose(), "sk_live_0123456789abcdef", "{name}");
    }
    let err = paystack_secret_from(
        &sdk,
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:nope",
    )
    .await
    .unwrap_err();
    assert!(format!("{err:?}").contains("Paystack secret"), "{err:?}");
}
