//! The billing function's Paystack key, read with the real Secrets Manager client from a local
//! Secrets Manager (moto's server on loopback), in both forms an operator may store it.

use farmops::aws::paystack_secret_from;

use crate::moto::LocalSecrets;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_the_paystack_key_from_secrets_manager() {
    let secrets = LocalSecrets::start("eu-west-1", "AKIDBILLING").await;
    for (name, stored) in [
        ("plain", "sk_live_0123456789abcdef"),
        ("key-value", r#"{"secret_key": "sk_live_0123456789abcdef"}"#),
    ] {
        let arn = secrets.create(&format!("paystack-{name}"), stored).await;
        let key = paystack_secret_from(&secrets.sdk, &arn).await.unwrap();
        assert_eq!(key.expose(), "sk_live_0123456789abcdef", "{name}");
    }
    let err = paystack_secret_from(
        &secrets.sdk,
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:nope",
    )
    .await
    .unwrap_err();
    assert!(format!("{err:?}").contains("Paystack secret"), "{err:?}");
}
